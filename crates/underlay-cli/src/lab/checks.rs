//! The check runner: numbers, times and prints each step as it runs, skips (as a failure) a
//! step whose prerequisite did not pass, and lists a whole group as skipped when the kernel
//! lacks what it needs.

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

/// Totals of a run. `skipped` counts checks not run because the kernel lacks a feature; they
/// are neither passes nor failures. A check skipped because an earlier one failed is a failure.
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }
}

/// Title and dots fill this many columns, so the verdicts line up.
const TITLE_WIDTH: usize = 58;

/// Runs groups of steps in order, numbering them "[n/total]" across groups.
pub struct Runner {
    total: usize,
    width: usize,
    number: usize,
    provided: HashSet<&'static str>,
    summary: Summary,
}

impl Runner {
    /// `total`: how many steps all groups hold together (run or skipped).
    pub fn new(total: usize) -> Self {
        Runner {
            total,
            width: total.to_string().len(),
            number: 0,
            provided: HashSet::new(),
            summary: Summary {
                passed: 0,
                failed: 0,
                skipped: 0,
            },
        }
    }

    /// Runs every step in order, printing one progress line each.
    pub fn run<C>(&mut self, steps: &[Step<C>], ctx: &mut C) {
        for step in steps {
            self.print_start(step.title);
            let passed = match step
                .needs
                .iter()
                .find(|need| !self.provided.contains(*need))
            {
                Some(missing) => {
                    finish_line(&format!("FAIL  skipped: needs {missing}"));
                    false
                }
                None => run_one(step, ctx),
            };
            if passed {
                self.provided.insert(step.provides);
                self.summary.passed += 1;
            } else {
                self.summary.failed += 1;
            }
        }
    }

    /// Lists every step as skipped (not run, not failed).
    pub fn skip<C>(&mut self, steps: &[Step<C>]) {
        for step in steps {
            self.print_start(step.title);
            finish_line("skipped");
            self.summary.skipped += 1;
        }
    }

    pub fn finish(self) -> Summary {
        self.summary
    }

    /// "[ 4/20] c1 pings c2 (IPv4) ........ " without a newline, flushed, so a slow step shows
    /// what it is doing.
    fn print_start(&mut self, title: &str) {
        self.number += 1;
        let dots = ".".repeat(TITLE_WIDTH.saturating_sub(title.len() + 2).max(3));
        let (number, total, width) = (self.number, self.total, self.width);
        print!("[{number:>width$}/{total}] {title} {dots} ");
        flush();
    }
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
