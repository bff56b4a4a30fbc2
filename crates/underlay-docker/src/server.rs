//! The unix-socket server: [`serve`] a listener from [`bind`](crate::bind)
//! forever, or run a stoppable [`Server`]. One thread per connection.

use crate::connection::{self, Settings};
use crate::http::{self, Limits};
use crate::response::error_body;
use crate::Handler;
use std::collections::HashMap;
use std::io;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Timeouts and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// How long a connection may wait for its next request (default 120 s).
    pub idle_timeout: Duration,
    /// How long reading one request may take once its first byte arrived,
    /// and writing its reply (default 30 s, the engine's own call timeout).
    pub request_timeout: Duration,
    /// Request line plus headers (default 64 KiB; over it: 431).
    pub max_header_bytes: usize,
    /// Request body (default 4 MiB; over it: 413).
    pub max_body_bytes: usize,
    /// Open connections (default 64; over it the new one gets 503).
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            idle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
            max_connections: 64,
        }
    }
}

/// Serves `listener` in the calling thread with the default
/// [`ServerConfig`]; returns only if accepting fails for good.
pub fn serve(listener: UnixListener, handler: Arc<dyn Handler>) -> io::Result<()> {
    serve_with(listener, handler, ServerConfig::default())
}

/// [`serve`] with a configuration.
pub fn serve_with(
    listener: UnixListener,
    handler: Arc<dyn Handler>,
    config: ServerConfig,
) -> io::Result<()> {
    listener.set_nonblocking(false)?;
    accept_loop(&listener, &Arc::new(Shared::new(handler, config)))
}

/// A server running on its own threads, stopped by [`Server::shutdown`]
/// or by dropping it; both wait for requests in progress to be answered.
pub struct Server {
    shared: Arc<Shared>,
    wake_address: Option<SocketAddr>,
    accept_thread: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Starts accepting on `listener`.
    pub fn start(
        listener: UnixListener,
        handler: Arc<dyn Handler>,
        config: ServerConfig,
    ) -> io::Result<Server> {
        listener.set_nonblocking(false)?;
        let wake_address = listener.local_addr().ok();
        let shared = Arc::new(Shared::new(handler, config));
        let for_thread = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name("plugin-accept".into())
            .spawn(move || accept_loop(&listener, &for_thread))?;
        Ok(Server {
            shared,
            wake_address,
            accept_thread: Some(accept_thread),
        })
    }

    /// Stops accepting, closes idle connections, lets requests in progress
    /// finish (their replies carry `Connection: close`) and waits for every
    /// connection thread. Returns the accept loop's error, if it failed.
    ///
    /// The listening socket is closed (unless its path no longer reaches
    /// it, which is logged); its file stays, and a later
    /// [`bind`](crate::bind) removes it.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        let Some(accept_thread) = self.accept_thread.take() else {
            return Ok(());
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // accept() has no timeout: a connection of our own wakes it. The
        // path may meanwhile name another socket, so wait only briefly.
        let woken = self
            .wake_address
            .as_ref()
            .is_some_and(|address| UnixStream::connect_addr(address).is_ok());
        let deadline = Instant::now() + Duration::from_secs(1);
        while woken && !accept_thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        let result = if accept_thread.is_finished() {
            accept_thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the accept thread panicked")))
        } else {
            tracing::warn!(
                "cannot wake the accept thread (socket file replaced?); it ends with its next connection"
            );
            Ok(())
        };
        self.shared.close_connections_and_wait();
        result
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("plugin server stopped with an error: {e}");
        }
    }
}

struct Shared {
    handler: Arc<dyn Handler>,
    config: ServerConfig,
    stopping: AtomicBool,
    connections: Mutex<Connections>,
    all_closed: Condvar,
}

#[derive(Default)]
struct Connections {
    next_id: u64,
    /// A clone of each open stream, to shut its read side down on stop.
    open: HashMap<u64, UnixStream>,
}

impl Shared {
    fn new(handler: Arc<dyn Handler>, config: ServerConfig) -> Shared {
        Shared {
            handler,
            config,
            stopping: AtomicBool::new(false),
            connections: Mutex::default(),
            all_closed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connections> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new connection; `None` when at the limit.
    fn register(&self, stream: &UnixStream) -> Option<u64> {
        let mut connections = self.lock();
        if connections.open.len() >= self.config.max_connections {
            return None;
        }
        let clone = stream.try_clone().ok()?;
        let id = connections.next_id;
        connections.next_id += 1;
        connections.open.insert(id, clone);
        Some(id)
    }

    fn unregister(&self, id: u64) {
        let mut connections = self.lock();
        connections.open.remove(&id);
        if connections.open.is_empty() {
            self.all_closed.notify_all();
        }
    }

    fn close_connections_and_wait(&self) {
        let mut connections = self.lock();
        for stream in connections.open.values() {
            // Wakes a reader blocked on an idle connection with EOF; a
            // request being handled still gets its reply written.
            let _ = stream.shutdown(std::net::Shutdown::Read);
        }
        while !connections.open.is_empty() {
            connections = self
                .all_closed
                .wait(connections)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn settings(&self) -> Settings<'_> {
        let config = &self.config;
        Settings {
            handler: &*self.handler,
            limits: Limits {
                max_header_bytes: config.max_header_bytes,
                max_body_bytes: config.max_body_bytes,
            },
            idle_timeout: config.idle_timeout,
            request_timeout: config.request_timeout,
        }
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) -> io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if is_transient(&e) => {
                tracing::warn!("accepting a plugin connection failed: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(e),
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        spawn_connection(stream, shared);
    }
}

/// Errors after which accepting again can succeed: interrupted or aborted
/// handshakes and exhausted descriptors or memory (EMFILE 24, ENFILE 23,
/// ENOBUFS 105, ENOMEM 12 on Linux), which clear as connections close.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted | io::ErrorKind::WouldBlock
    ) || matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
}

fn spawn_connection(stream: UnixStream, shared: &Arc<Shared>) {
    let Some(id) = shared.register(&stream) else {
        reject_busy(stream, shared.config.request_timeout);
        return;
    };
    let for_thread = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("plugin-conn".into())
        .spawn(move || {
            let _registration = Registration {
                shared: &for_thread,
                id,
            };
            let stopping = || for_thread.stopping.load(Ordering::SeqCst);
            connection::run(stream, &for_thread.settings(), &stopping);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start a thread for a plugin connection: {e}");
        shared.unregister(id);
    }
}

/// Unregisters a connection when its thread ends, panicking or not.
struct Registration<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.unregister(self.id);
    }
}

fn reject_busy(mut stream: UnixStream, timeout: Duration) {
    tracing::warn!("too many plugin connections, refusing one");
    let body = error_body("too many connections to the plugin, try again");
    let _ = stream.set_write_timeout(Some(timeout));
    let _ = http::write_response(&mut stream, 503, &[], body.as_bytes(), true);
}
