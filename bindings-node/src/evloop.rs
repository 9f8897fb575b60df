//! A local executor on the JS thread (see docs/node.md, "The call path").
//!
//! Waking a sleeping thread costs tens of µs, and the old path woke two per call (a tokio
//! worker for the request, the JS thread for the reply). Here the calls' futures are polled
//! on the JS thread itself, inside the native callbacks that can make them ready: a turn's
//! first call, the tick's flush, a socket's events (socket.rs), and one thread-safe
//! function through which other threads (tokio timers, core's background tasks, redis-rs's
//! own sockets for the topologies that keep them) wake the loop. Each such callback ends
//! by draining: it polls the ready tasks until none is left, inside `runtime().enter()` so
//! core's timeouts and spawns keep working against the tokio runtime, then writes the
//! sockets' output.
//!
//! One executor per JS thread (worker_threads each have their own); it is never torn
//! down before its thread ends, so nothing is dropped against a dead environment.
#![allow(unsafe_code)] // the thread-safe function and the environment are raw Node-API handles

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use napi::{sys, Env, Error, Result, Status};

use crate::batch::runtime;

/// A task that may be spawned from any thread.
pub type SendTask = Pin<Box<dyn Future<Output = ()> + Send>>;
type Task = Pin<Box<dyn Future<Output = ()>>>;

/// What wakers and other threads share with one JS thread's executor.
pub struct Remote {
    queue: Mutex<Queue>,
    /// Set once, right after the function is made (its context is this `Remote`).
    tsfn: AtomicPtr<sys::napi_threadsafe_function__>,
    /// A wake through `tsfn` is on its way (coalesces wakes from other threads).
    notified: AtomicBool,
    /// Node finalized the function (the environment is going away).
    finalized: AtomicBool,
}

#[derive(Default)]
struct Queue {
    /// Slots of woken tasks (see [`Local::tasks`]).
    woken: Vec<usize>,
    spawned: Vec<SendTask>,
}

// SAFETY: a thread-safe function may be called from any thread; the rest is behind a mutex
// or atomic.
unsafe impl Send for Remote {}
unsafe impl Sync for Remote {}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("evloop::Remote")
    }
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Remote {
    /// Runs `task` on the JS thread (soon, if called from it).
    pub fn spawn(&self, task: SendTask) {
        lock(&self.queue).spawned.push(task);
        self.wake_loop();
    }

    /// Makes sure the loop drains soon: nothing to do inside one of its callbacks (it
    /// drains before returning), else one call of the thread-safe function.
    pub fn wake_loop(&self) {
        if ACTIVE.with(Cell::get) == ptr::from_ref(self) {
            return;
        }
        if self.finalized.load(Ordering::Acquire) || self.notified.swap(true, Ordering::AcqRel) {
            return;
        }
        let tsfn = self.tsfn.load(Ordering::Acquire);
        if tsfn.is_null() {
            self.notified.store(false, Ordering::Release);
            return;
        }
        // SAFETY: the function lives as long as the environment (never released by us).
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                tsfn,
                ptr::null_mut(),
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            self.notified.store(false, Ordering::Release);
        }
    }
}

/// Wakes whatever task holds one slot. A slot keeps its waker for every task it holds, so a
/// waker kept past its task's end (a timer's) may poll the slot's next task once for
/// nothing, which futures allow.
struct TaskWaker {
    slot: usize,
    remote: Arc<Remote>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.remote.queue).woken.push(self.slot);
        self.remote.wake_loop();
    }
}

/// Work done after each drain until it returns `false` (a socket's output).
pub type AfterDrain = Box<dyn FnMut(&Env) -> bool>;

/// One JS thread's executor.
pub struct Local {
    remote: Arc<Remote>,
    env: sys::napi_env,
    /// The tasks by slot (a slab: a sequential call spawns and ends a task each time, and
    /// a hash map's insert and remove were a tenth of the executor's cost).
    tasks: RefCell<Vec<Slot>>,
    /// Slots without a task.
    free: RefCell<Vec<usize>>,
    /// The drain's buffers, kept between drains (taken while one runs).
    scratch: Cell<Option<Scratch>>,
    /// Nesting of native callbacks; the outermost drains.
    depth: Cell<u32>,
    /// Tasks spawned on this thread that need not be `Send`.
    spawned: RefCell<Vec<Task>>,
    /// Work to do after the tasks are polled (the sockets' output).
    pub(crate) after: RefCell<Vec<AfterDrain>>,
}

struct Slot {
    task: Option<Task>,
    waker: Waker,
}

/// What one drain moves tasks through: slots to poll, tasks to place.
#[derive(Default)]
struct Scratch {
    ids: Vec<usize>,
    sent: Vec<SendTask>,
    made: Vec<Task>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("evloop::Local")
    }
}

thread_local! {
    static LOOP: Cell<Option<&'static Local>> = const { Cell::new(None) };
    /// The executor whose callback is running on this thread (null outside one).
    static ACTIVE: Cell<*const Remote> = const { Cell::new(ptr::null()) };
    /// Counts the turns of this thread's event loop that began in one of the callbacks the
    /// loop makes to this addon (see [`new_turn`]).
    static TURN: Cell<u64> = const { Cell::new(0) };
}

/// A turn of the event loop begins: called first by each callback the loop itself makes
/// to this addon (a socket's events, the executor's and the settler's thread-safe
/// functions), never by one a call makes. The calls of a turn that began elsewhere (a
/// timer, another library's I/O) count as the last counted turn's, which only makes
/// them batch (`Shared::submit`).
pub fn new_turn() {
    TURN.with(|turn| turn.set(turn.get().wrapping_add(1)));
}

/// The current turn (see [`new_turn`]).
pub fn turn() -> u64 {
    TURN.with(Cell::get)
}

pub(crate) fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), format!("{what} failed")))
    }
}

/// This thread's executor, made on first use. It is leaked on purpose: tasks may hold
/// Node-API handles, which must not be dropped after the environment is gone.
pub fn local(env: &Env) -> Result<&'static Local> {
    if let Some(local) = LOOP.with(Cell::get) {
        return Ok(local);
    }
    let raw = env.raw();
    let mut name = ptr::null_mut();
    let mut tsfn = ptr::null_mut();
    let remote = Arc::new(Remote {
        queue: Mutex::new(Queue::default()),
        tsfn: AtomicPtr::new(ptr::null_mut()),
        notified: AtomicBool::new(false),
        finalized: AtomicBool::new(false),
    });
    // The function's context: the `Remote` it wakes (one reference, released on finalize).
    let context = Arc::into_raw(remote.clone()) as *mut c_void;
    // SAFETY: plain Node-API calls with live handles on the JS thread.
    unsafe {
        check(
            sys::napi_create_string_utf8(raw, c"polycache-loop".as_ptr(), 14, &mut name),
            "napi_create_string_utf8",
        )?;
        check(
            sys::napi_create_threadsafe_function(
                raw,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                context,
                Some(on_finalize),
                context,
                Some(on_wake),
                &mut tsfn,
            ),
            "napi_create_threadsafe_function",
        )?;
        // Never keeps the process alive: pending promises do (see settle.rs).
        check(
            sys::napi_unref_threadsafe_function(raw, tsfn),
            "napi_unref_threadsafe_function",
        )?;
    }
    remote.tsfn.store(tsfn, Ordering::Release);
    let local: &'static Local = Box::leak(Box::new(Local {
        remote,
        env: raw,
        tasks: RefCell::new(Vec::new()),
        free: RefCell::new(Vec::new()),
        scratch: Cell::new(None),
        depth: Cell::new(0),
        spawned: RefCell::new(Vec::new()),
        after: RefCell::new(Vec::new()),
    }));
    LOOP.with(|cell| cell.set(Some(local)));
    Ok(local)
}

/// The environment of the executor whose callback runs on this thread now, if it is `env`:
/// where a promise of `env` can be settled right away.
pub fn active_env(env: sys::napi_env) -> Option<Env> {
    if ACTIVE.with(Cell::get).is_null() {
        return None;
    }
    let local = LOOP.with(Cell::get)?;
    (local.env == env).then(|| Env::from_raw(env))
}

impl Local {
    /// The handle other threads wake this executor through.
    pub fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    /// Runs `task` on this thread; it is first polled when the current callback drains.
    pub fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.spawned.borrow_mut().push(Box::pin(task));
    }

    /// Runs `f` as a native callback of this executor: wakes during it only queue, and the
    /// outermost one drains before returning.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Leaves the callback even when `f` or the drain panics: an executor left marked
        /// active would never drain again (every later call would hang).
        struct Leave<'a> {
            local: &'a Local,
            previous: *const Remote,
        }
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.local.depth.set(self.local.depth.get() - 1);
                ACTIVE.with(|active| active.set(self.previous));
            }
        }
        let previous = ACTIVE.with(|active| active.replace(Arc::as_ptr(&self.remote)));
        self.depth.set(self.depth.get() + 1);
        let _leave = Leave {
            local: self,
            previous,
        };
        let out = f();
        if self.depth.get() == 1 {
            self.drain();
        }
        out
    }

    fn drain(&self) {
        let _runtime = runtime().enter();
        let env = Env::from_raw(self.env);
        let mut scratch = self.scratch.take().unwrap_or_default();
        loop {
            {
                let mut queue = lock(&self.remote.queue);
                scratch.ids.append(&mut queue.woken);
                scratch.sent.append(&mut queue.spawned);
            }
            scratch.made.append(&mut self.spawned.borrow_mut());
            if scratch.ids.is_empty() && scratch.sent.is_empty() && scratch.made.is_empty() {
                // The sockets' output; it may wake or spawn tasks (a closed socket, a dropped
                // stream), so look again.
                self.after.borrow_mut().retain_mut(|after| after(&env));
                let idle = {
                    let queue = lock(&self.remote.queue);
                    queue.woken.is_empty() && queue.spawned.is_empty()
                };
                if idle && self.spawned.borrow().is_empty() {
                    self.scratch.set(Some(scratch));
                    return;
                }
                continue;
            }
            let Scratch { ids, sent, made } = &mut scratch;
            for task in sent
                .drain(..)
                .map(|task| task as Task)
                .chain(made.drain(..))
            {
                ids.push(self.place(task));
            }
            for slot in ids.drain(..) {
                // Taken out while it runs: its poll may spawn tasks or drop others.
                let taken = self.tasks.borrow_mut().get_mut(slot).and_then(|held| {
                    let task = held.task.take()?;
                    Some((task, held.waker.clone()))
                });
                let Some((mut task, waker)) = taken else {
                    continue; // woken twice, or already done
                };
                let mut cx = Context::from_waker(&waker);
                let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    task.as_mut().poll(&mut cx)
                }));
                if let Ok(Poll::Pending) = polled {
                    if let Some(held) = self.tasks.borrow_mut().get_mut(slot) {
                        held.task = Some(task);
                    }
                } else {
                    self.free.borrow_mut().push(slot);
                    drop(task);
                }
            }
        }
    }

    /// Puts `task` in a free slot (or a new one) and returns the slot.
    fn place(&self, task: Task) -> usize {
        let mut tasks = self.tasks.borrow_mut();
        if let Some(slot) = self.free.borrow_mut().pop() {
            tasks[slot].task = Some(task);
            return slot;
        }
        let slot = tasks.len();
        let waker = Waker::from(Arc::new(TaskWaker {
            slot,
            remote: self.remote.clone(),
        }));
        tasks.push(Slot {
            task: Some(task),
            waker,
        });
        slot
    }
}

/// `f` with this thread's executor and its environment, when one of its callbacks is
/// running (where tasks are polled).
pub fn with_current<R>(f: impl FnOnce(&'static Local, &Env) -> R) -> Option<R> {
    if ACTIVE.with(Cell::get).is_null() {
        return None;
    }
    let local = LOOP.with(Cell::get)?;
    Some(f(local, &Env::from_raw(local.env)))
}

/// Runs `f` inside this thread's executor (see [`Local::enter`]).
pub fn enter<R>(env: &Env, f: impl FnOnce(&'static Local) -> R) -> Result<R> {
    let local = local(env)?;
    Ok(local.enter(|| f(local)))
}

unsafe extern "C" fn on_wake(
    env: sys::napi_env,
    _callback: sys::napi_value,
    context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() || context.is_null() {
        return;
    }
    // SAFETY: the context is the `Remote` whose reference `local` gave the function; it is
    // released only in `on_finalize`, after the last call.
    let remote = &*(context as *const Remote);
    remote.notified.store(false, Ordering::Release);
    new_turn();
    if let Some(local) = LOOP.with(Cell::get) {
        if ptr::eq(Arc::as_ptr(&local.remote), remote) {
            local.enter(|| ());
        }
    }
}

unsafe extern "C" fn on_finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc::into_raw` reference made in `local`; Node finalizes once,
    // so it is taken back exactly once.
    let remote = Arc::from_raw(data as *const Remote);
    remote.finalized.store(true, Ordering::Release);
}
