//! The process's file-descriptor limit ([`raise_fd_limit`]), the listening socket
//! ([`listen`], with a deep backlog) and the connection limit ([`slots`]): the accept loop
//! ([`super::conn::run`]) accepts a connection only while a slot is free, so further clients
//! wait in the kernel's listen backlog until one closes: a burst is slowed down, not refused.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;

/// Connections the kernel holds for the mirror before it accepts them (the kernel caps it at
/// `net.core.somaxconn`). Clients past `--max-connections` wait here.
pub const BACKLOG: u32 = 4096;

/// Bind and listen on `addr` with a [`BACKLOG`]-deep queue.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The slots of a connection limit (at least 1), or none.
pub fn slots(limit: Option<usize>) -> Option<Arc<Semaphore>> {
    limit.map(|limit| Arc::new(Semaphore::new(limit.max(1))))
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit, so idle client sockets do not exhaust the
/// default soft limit (often 1024) long before the system's. Returns the (soft, hard) limits
/// now in force.
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}
