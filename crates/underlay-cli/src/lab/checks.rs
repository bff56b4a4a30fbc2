//! The check runner: numbers, times and prints each step as it runs, and skips (as a failure)
//! a step whose prerequisite did not pass.

use std::collections::HashSet;
use std::io::Write;
use std::time::Instant;

/// One numbered check of the scenario.
pub struct Step<C> {
    /// What a later step names in `needs`; reads as a state ("c1 connected").
    pub provides: &'static str,
    pub title: &'static str,
    /// Steps (by `provides`) that must have passed for this one to make sense.
    pub needs: &'static [&'static str],
    pub run: fn(&mut C) -> anyhow::Result<()>,
}

/// Totals of a run.
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

impl Summary {
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }
}

/// Title and dots fill this many columns, so the verdicts line up.
const TITLE_WIDTH: usize = 58;

/// Runs every step in order, printing one progress line each.
pub fn run_steps<C>(steps: &[&Step<C>], ctx: &mut C) -> Summary {
    let total = steps.len();
    let width = total.to_string().len();
    let mut provided: HashSet<&str> = HashSet::new();
    let mut summary = Summary {
        passed: 0,
        failed: 0,
    };
    for (index, step) in steps.iter().enumerate() {
        print_start(index + 1, total, width, step.title);
        let passed = match step.needs.iter().find(|need| !provided.contains(*need)) {
            Some(missing) => {
                finish_line(&format!("FAIL  skipped: needs {missing}"));
                false
            }
            None => run_one(step, ctx),
        };
        if passed {
            provided.insert(step.provides);
            summary.passed += 1;
        } else {
            summary.failed += 1;
        }
    }
    summary
}

/// Runs and times one step, finishing its progress line; the reason of a failure follows on
/// indented lines.
fn run_one<C>(step: &Step<C>, ctx: &mut C) -> bool {
    let started = Instant::now();
    let outcome = (step.run)(ctx);
    let elapsed = started.elapsed().as_millis();
    match outcome {
        Ok(()) => {
            finish_line(&format!("ok  ({elapsed} ms)"));
            true
        }
        Err(err) => {
            finish_line(&format!("FAIL  ({elapsed} ms)"));
            for line in format!("{err:#}").lines() {
                println!("        {line}");
            }
            false
        }
    }
}

/// "[ 4/20] c1 pings c2 (IPv4) ........ " without a newline, flushed, so a slow step shows
/// what it is doing.
fn print_start(number: usize, total: usize, width: usize, title: &str) {
    let dots = ".".repeat(TITLE_WIDTH.saturating_sub(title.len() + 2).max(3));
    print!("[{number:>width$}/{total}] {title} {dots} ");
    flush();
}

/// Prints a line that is not a numbered check ("building the topology ... ok").
pub fn print_phase(title: &str) {
    let dots = ".".repeat(TITLE_WIDTH.saturating_sub(title.len() + 2).max(3));
    let pad = " ".repeat(3 + 2 * 2);
    print!("{pad}{title} {dots} ");
    flush();
}

pub fn finish_line(verdict: &str) {
    println!("{verdict}");
    flush();
}

fn flush() {
    // A failed flush of stdout only delays the progress display; nothing to recover.
    let _ = std::io::stdout().flush();
}
