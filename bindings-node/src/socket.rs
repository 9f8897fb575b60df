//! The transport of plain `redis://` / `redis+unix://` nodes: a Node `net` socket owned by
//! JS, bytes moved by Rust (core's [`Connector`]). The socket's events are native callbacks
//! of the JS thread's executor (evloop.rs), so a reply is read, parsed and its promise
//! settled on the thread the event loop woke for it: no other thread is involved.
//!
//! Rust sees an in-memory duplex stream ([`Stream`]): reads take what the socket's reads
//! pushed (Node's `onread`, one buffer per socket), writes append to an outbox that the executor writes with one
//! `socket.write` per drain. Sockets are unreferenced: a pending promise keeps the process
//! alive, an idle connection does not.
#![allow(unsafe_code)] // the socket's JS functions and the data buffers are raw handles

use std::io;
use std::pin::Pin;
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_util::future::{select, BoxFuture, Either};
use napi::bindgen_prelude::FromNapiValue;
use napi::{sys, Env, Result};
use polycache::store::{Connector, NodeAddr, NodeStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::evloop::{check, Local, Remote};

/// Opens a socket and routes its events to one callback: `events(kind, arg, length)`.
const OPEN: &str = r#"(function () {
  const net = process.getBuiltinModule('node:net')
  return function open (host, port, path, events) {
    // Replies are read into one buffer per socket and handed over with their length: no
    // Buffer per read and no stream machinery ('data' events) on the way.
    const onread = { buffer: Buffer.allocUnsafe(65536), callback: (n, buffer) => { events(1, buffer, n) } }
    const socket = path !== null
      ? net.createConnection({ path, onread })
      : net.createConnection({ host, port, onread })
    socket.setNoDelay(true)
    socket.unref()
    socket.on('connect', () => events(0, null))
    socket.on('error', (e) => events(2, e && e.code ? `${e.code}: ${e.message}` : String(e)))
    socket.on('close', () => events(3, null))
    socket.on('drain', () => events(4, null))
    // The write answers the bytes the socket still holds (backpressure, see `Stream`); with
    // a length, the first bytes of the socket's scratch buffer (see `Socket::flush`).
    return [(data, n) => { socket.write(n === undefined ? data : data.subarray(0, n)); return socket.writableLength }, () => { socket.destroy() }]
  }
})()"#;

const CONNECTED: u32 = 0;
const DATA: u32 = 1;
const ERROR: u32 = 2;
const CLOSED: u32 = 3;
const DRAINED: u32 = 4;

/// Bytes a socket may hold unsent (its `writableLength` plus the outbox) before writes
/// wait for it to drain: a stalled server must not make every caller's request, including
/// those that timed out, pile up in JS buffers. A larger single write still goes through.
const WRITE_BOUND: usize = 16 << 20;

#[derive(Default)]
struct State {
    connected: bool,
    /// Received and not read yet (from `read_at`).
    inbox: Vec<u8>,
    read_at: usize,
    /// Written and not handed to the socket yet.
    outbox: Vec<u8>,
    /// The socket's `writableLength` after its last write (0 once it drained).
    unsent: usize,
    /// A writer waiting for the socket to drain below [`WRITE_BOUND`].
    write_waker: Option<Waker>,
    /// The socket closed; with the error it reported, if any.
    closed: Option<Option<(io::ErrorKind, String)>>,
    /// The Rust side is gone: the socket is to be destroyed.
    dropped: bool,
    waker: Option<Waker>,
}

/// What the socket's callbacks and the Rust stream share.
#[derive(Default)]
struct Pipe(Mutex<State>);

impl Pipe {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(state: &mut State) {
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    fn wake_writer(state: &mut State) {
        if let Some(waker) = state.write_waker.take() {
            waker.wake();
        }
    }

    fn error(state: &State) -> Option<io::Error> {
        match &state.closed {
            Some(Some((kind, message))) => Some(io::Error::new(*kind, message.clone())),
            _ => None,
        }
    }
}

fn error_kind(message: &str) -> io::ErrorKind {
    let code = message.split(':').next().unwrap_or_default();
    match code {
        "ECONNREFUSED" => io::ErrorKind::ConnectionRefused,
        "ECONNRESET" => io::ErrorKind::ConnectionReset,
        "EPIPE" => io::ErrorKind::BrokenPipe,
        "ENOENT" => io::ErrorKind::NotFound,
        "ETIMEDOUT" => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::ConnectionAborted,
    }
}

/// A node's byte stream (see the module docs).
pub struct Stream {
    pipe: Arc<Pipe>,
    remote: Arc<Remote>,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.pipe.state();
        let available = state.inbox.len() - state.read_at;
        if available > 0 {
            let n = available.min(buf.remaining());
            let from = state.read_at;
            buf.put_slice(&state.inbox[from..from + n]);
            state.read_at += n;
            if state.read_at == state.inbox.len() {
                state.inbox.clear();
                state.read_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if state.closed.is_some() {
            // An error, or the end of the stream (nothing put into `buf`).
            return Poll::Ready(Pipe::error(&state).map_or(Ok(()), Err));
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.pipe.state();
        if state.closed.is_some() {
            let err = Pipe::error(&state)
                .unwrap_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "socket closed"));
            return Poll::Ready(Err(err));
        }
        if state.unsent + state.outbox.len() >= WRITE_BOUND {
            // Woken when the outbox is written below the bound or the socket drains.
            state.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        state.outbox.extend_from_slice(buf);
        drop(state);
        // The executor writes the outbox when it drains: at the end of the current
        // callback on the JS thread, or soon when written from elsewhere (a connection's
        // handshake polled by a task on the tokio runtime).
        self.remote.wake_loop();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The executor writes the outbox before its callback returns.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.pipe.state().dropped = true;
        // The executor destroys the socket when it next drains.
        self.remote.spawn(Box::pin(async {}));
    }
}

/// Outboxes up to this size are written from the socket's scratch buffer.
const SCRATCH: usize = 16 << 10;

/// A socket's JS side, kept by the executor: its write and destroy functions.
struct Socket {
    pipe: Arc<Pipe>,
    write: sys::napi_ref,
    destroy: sys::napi_ref,
    /// A Buffer of [`SCRATCH`] bytes written through, and its memory: a new Buffer per
    /// write (`napi_create_buffer_copy`) cost about 1 µs of a 35 µs get. Kept only while
    /// every write it carried left the socket at once (`writableLength` 0 afterwards);
    /// a write the socket holds keeps the bytes it was given, so it gets a new one.
    scratch: Option<(sys::napi_ref, *mut u8)>,
    /// The outbox being written, swapped with the empty one it leaves: both keep their
    /// room (up to [`SCRATCH`]), so a call's request grows no new vector.
    sending: Vec<u8>,
}

impl Socket {
    /// Writes the outbox; `false` once the socket is done with (its references released).
    fn flush(&mut self, env: &Env) -> bool {
        let mut outbox = std::mem::take(&mut self.sending);
        let (dropped, closed) = {
            let mut state = self.pipe.state();
            std::mem::swap(&mut state.outbox, &mut outbox);
            (state.dropped, state.closed.is_some())
        };
        let raw = env.raw();
        let mut failed = false;
        if !outbox.is_empty() && !closed {
            // SAFETY: on the JS thread inside a native callback; the references are live
            // until released below.
            let unsent = unsafe {
                match self.buffer_of(raw, &outbox) {
                    Some((args, count)) => call(raw, self.write, &args[..count]),
                    None => ptr::null_mut(),
                }
            };
            let mut length = 0.0;
            // SAFETY: as above.
            let counted = !unsent.is_null()
                && unsafe { sys::napi_get_value_double(raw, unsent, &mut length) }
                    == sys::Status::napi_ok;
            if counted {
                let mut state = self.pipe.state();
                // A float count of bytes: truncation is the intent.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                {
                    state.unsent = length as usize;
                }
                if state.unsent + state.outbox.len() < WRITE_BOUND {
                    Pipe::wake_writer(&mut state);
                }
            }
            if !counted || length > 0.0 {
                // The socket may still hold the scratch bytes it was given.
                self.drop_scratch(raw);
            }
            if unsent.is_null() {
                // The bytes may not have reached the socket, and the replies of the calls
                // behind them would then go to the wrong callers: end the connection, so
                // those calls fail and the next one opens a new connection.
                failed = true;
                let mut state = self.pipe.state();
                state.closed = Some(Some((
                    io::ErrorKind::BrokenPipe,
                    "writing to the socket failed".to_owned(),
                )));
                Pipe::wake(&mut state);
                Pipe::wake_writer(&mut state);
            }
        }
        outbox.clear();
        if outbox.capacity() <= SCRATCH {
            self.sending = outbox;
        }
        if dropped || closed || failed {
            // SAFETY: as above; the references are not used afterwards.
            unsafe {
                if (dropped && !closed) || failed {
                    call(raw, self.destroy, &[]);
                }
                sys::napi_delete_reference(raw, self.write);
                sys::napi_delete_reference(raw, self.destroy);
            }
            self.drop_scratch(raw);
            return false;
        }
        true
    }

    /// The write function's arguments for `bytes`: the scratch Buffer and the length, or a
    /// new Buffer when they do not fit; `None` when Node-API failed.
    ///
    /// # Safety
    /// On the JS thread inside a native callback of `env`.
    unsafe fn buffer_of(
        &mut self,
        env: sys::napi_env,
        bytes: &[u8],
    ) -> Option<([sys::napi_value; 2], usize)> {
        let mut buffer = ptr::null_mut();
        if bytes.len() > SCRATCH {
            let mut data = ptr::null_mut();
            let status = sys::napi_create_buffer_copy(
                env,
                bytes.len(),
                bytes.as_ptr().cast(),
                &mut data,
                &mut buffer,
            );
            return (status == sys::Status::napi_ok).then_some(([buffer, ptr::null_mut()], 1));
        }
        if self.scratch.is_none() {
            let mut data = ptr::null_mut();
            let mut reference = ptr::null_mut();
            if sys::napi_create_buffer(env, SCRATCH, &mut data, &mut buffer) != sys::Status::napi_ok
                || sys::napi_create_reference(env, buffer, 1, &mut reference)
                    != sys::Status::napi_ok
            {
                return None;
            }
            self.scratch = Some((reference, data.cast()));
        }
        let (reference, data) = self.scratch?;
        let mut length = ptr::null_mut();
        if sys::napi_get_reference_value(env, reference, &mut buffer) != sys::Status::napi_ok
            || buffer.is_null()
            || sys::napi_create_uint32(env, bytes.len() as u32, &mut length) != sys::Status::napi_ok
        {
            return None;
        }
        // The Buffer's memory does not move while the reference keeps it alive, and no
        // write still reads it (see `scratch`).
        ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        Some(([buffer, length], 2))
    }

    fn drop_scratch(&mut self, env: sys::napi_env) {
        if let Some((reference, _)) = self.scratch.take() {
            // SAFETY: on the JS thread; the reference is not used afterwards.
            unsafe { sys::napi_delete_reference(env, reference) };
        }
    }
}

/// Calls the function behind `reference` with `args` and answers its result (null when it
/// threw: the exception is left pending for Node to report, as from any callback).
///
/// # Safety
/// On the JS thread, with a live reference of `env`.
unsafe fn call(
    env: sys::napi_env,
    reference: sys::napi_ref,
    args: &[sys::napi_value],
) -> sys::napi_value {
    let mut function = ptr::null_mut();
    let mut undefined = ptr::null_mut();
    let mut out = ptr::null_mut();
    if sys::napi_get_reference_value(env, reference, &mut function) == sys::Status::napi_ok
        && !function.is_null()
    {
        sys::napi_get_undefined(env, &mut undefined);
        sys::napi_call_function(
            env,
            undefined,
            function,
            args.len(),
            args.as_ptr(),
            &mut out,
        );
    }
    out
}

/// Opens a socket to `addr` on this thread (inside one of the executor's callbacks).
fn open(local: &'static Local, env: &Env, addr: &NodeAddr) -> Result<Arc<Pipe>> {
    let opener: napi::bindgen_prelude::Function<'_, (), ()> = env.run_script(OPEN)?;
    let pipe = Arc::new(Pipe::default());
    let events = {
        let pipe = pipe.clone();
        crate::entry::function(env, c"events", move |env, args| {
            crate::evloop::new_turn();
            crate::evloop::enter(env, |_| on_event(env, args, &pipe))??;
            Ok(ptr::null_mut())
        })?
    };
    let raw = env.raw();
    let mut args = [ptr::null_mut(); 4];
    // SAFETY: live env on the JS thread; the values are made here. A failed call is an
    // error, not a null argument (a null host would connect to localhost).
    unsafe {
        let mut null = ptr::null_mut();
        check(sys::napi_get_null(raw, &mut null), "napi_get_null")?;
        match addr {
            NodeAddr::Tcp { host, port } => {
                check(
                    sys::napi_create_string_utf8(
                        raw,
                        host.as_ptr().cast(),
                        host.len() as isize,
                        &mut args[0],
                    ),
                    "napi_create_string_utf8",
                )?;
                check(
                    sys::napi_create_uint32(raw, u32::from(*port), &mut args[1]),
                    "napi_create_uint32",
                )?;
                args[2] = null;
            }
            NodeAddr::Unix(path) => {
                let path = path.to_string_lossy();
                args[0] = null;
                args[1] = null;
                check(
                    sys::napi_create_string_utf8(
                        raw,
                        path.as_ptr().cast(),
                        path.len() as isize,
                        &mut args[2],
                    ),
                    "napi_create_string_utf8",
                )?;
            }
        }
        args[3] = events;
    }
    let pair = crate::patterns::call(env, &opener, &args)?;
    let mut write = ptr::null_mut();
    let mut destroy = ptr::null_mut();
    // SAFETY: `pair` is the array `open` returned.
    unsafe {
        let (mut w, mut d) = (ptr::null_mut(), ptr::null_mut());
        check(
            sys::napi_get_element(raw, pair, 0, &mut w),
            "napi_get_element",
        )?;
        check(
            sys::napi_get_element(raw, pair, 1, &mut d),
            "napi_get_element",
        )?;
        check(
            sys::napi_create_reference(raw, w, 1, &mut write),
            "napi_create_reference",
        )?;
        if let Err(err) = check(
            sys::napi_create_reference(raw, d, 1, &mut destroy),
            "napi_create_reference",
        ) {
            sys::napi_delete_reference(raw, write);
            return Err(err);
        }
    }
    let mut socket = Socket {
        pipe: pipe.clone(),
        write,
        destroy,
        scratch: None,
        sending: Vec::new(),
    };
    local
        .after
        .borrow_mut()
        .push(Box::new(move |env| socket.flush(env)));
    Ok(pipe)
}

/// A socket's event: `args` are `(kind, arg, length)` (see [`OPEN`]).
fn on_event(env: &Env, args: &crate::entry::Args, pipe: &Pipe) -> Result<()> {
    let raw = env.raw();
    let mut kind = 0;
    // SAFETY: values of this callback's scope.
    unsafe {
        check(
            sys::napi_get_value_uint32(raw, args[0], &mut kind),
            "napi_get_value_uint32",
        )?
    };
    let arg = args[1];
    let mut state = pipe.state();
    match kind {
        CONNECTED => state.connected = true,
        DATA => {
            let mut read = 0;
            let mut data = ptr::null_mut();
            let mut len = 0;
            // SAFETY: `arg` is the socket's read buffer, live during this call; `read` of its
            // bytes are the new ones.
            unsafe {
                check(
                    sys::napi_get_value_uint32(raw, args[2], &mut read),
                    "napi_get_value_uint32",
                )?;
                sys::napi_get_buffer_info(raw, arg, &mut data, &mut len);
                let len = len.min(read as usize);
                if !data.is_null() && len > 0 {
                    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
                    state.inbox.extend_from_slice(bytes);
                }
            }
        }
        ERROR if state.closed.is_none() => {
            // SAFETY: as above.
            let message = unsafe { String::from_napi_value(raw, arg)? };
            state.closed = Some(Some((error_kind(&message), message)));
        }
        CLOSED if state.closed.is_none() => state.closed = Some(None),
        DRAINED => {
            state.unsent = 0;
            Pipe::wake_writer(&mut state);
        }
        _ => {}
    }
    Pipe::wake(&mut state);
    if state.closed.is_some() {
        // A writer waiting for room sees the error.
        Pipe::wake_writer(&mut state);
    }
    Ok(())
}

/// Node's sockets as core's transport (see the module docs).
#[derive(Debug)]
pub struct NodeConnector {
    pub remote: Arc<Remote>,
}

impl Connector for NodeConnector {
    fn connect(&self, addr: &NodeAddr) -> BoxFuture<'static, io::Result<Box<dyn NodeStream>>> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (addr, remote) = (addr.clone(), self.remote.clone());
        self.remote.spawn(Box::pin(async move {
            let mut sender = sender;
            let opened = {
                let connecting = std::pin::pin!(connect(remote, addr));
                let abandoned = std::pin::pin!(sender.closed());
                // A caller that gave up (its connect timeout) drops the receiver: the
                // half-open socket is dropped with the future, and the executor destroys it.
                match select(connecting, abandoned).await {
                    Either::Left((opened, _)) => Some(opened),
                    Either::Right(_) => None,
                }
            };
            if let Some(opened) = opened {
                let _ = sender.send(opened);
            }
        }));
        Box::pin(async move {
            receiver
                .await
                .unwrap_or_else(|_| Err(io::Error::other("the JS event loop is gone")))
        })
    }

    fn spawn(&self, driver: BoxFuture<'static, ()>) {
        self.remote.spawn(driver);
    }
}

/// Opens the socket (polled on the JS thread) and waits for it to connect.
async fn connect(remote: Arc<Remote>, addr: NodeAddr) -> io::Result<Box<dyn NodeStream>> {
    let pipe = crate::evloop::with_current(|local, env| open(local, env, &addr))
        .ok_or_else(|| io::Error::other("not on the JS thread"))?
        .map_err(|e| io::Error::other(format!("{addr}: {}", e.reason)))?;
    let stream = Stream {
        pipe: pipe.clone(),
        remote,
    };
    std::future::poll_fn(|cx| {
        let mut state = pipe.state();
        if state.connected {
            return Poll::Ready(Ok(()));
        }
        if state.closed.is_some() {
            let err = Pipe::error(&state).unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::ConnectionAborted, "the socket closed")
            });
            return Poll::Ready(Err(io::Error::new(err.kind(), format!("{addr}: {err}"))));
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await?;
    Ok(Box::new(stream))
}
