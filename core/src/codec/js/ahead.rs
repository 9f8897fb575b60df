//! Reading a value's tape on a helper thread while the JS walk is still writing it: a large
//! `set` then costs the JS thread its walk and only the end of core's pass, instead of both
//! in turn.
//!
//! The walk publishes how far its tape is written, always between two items of the root
//! container (a record dict's records, a list's items), and never changes a byte it has
//! published ([`Written`]). The helper reads the published items into the encoder; the
//! JS thread, once the walk has returned, takes the work over ([`TapeAhead::finish`]) and
//! reads the rest itself. The same reader reads the same bytes in the same order on
//! either thread, so the payload, and any refusal, are those of [`super::tape::encode_tape`].
//!
//! The work (the encoder and the reader's place) sits in one slot that either thread
//! takes. The helper holds it only while it reads what is published, and once the JS
//! thread wants it back it stops at the next item boundary; the JS thread then finishes
//! whatever is left, everything if the helper never ran. So the JS thread waits only for
//! the item the helper is reading (spinning, then sleeping: if the helper was
//! descheduled in the middle of an item, until it runs again), never for a helper that
//! has not started. The root container's head is read on the JS thread when the helper
//! starts, and the helper never reads those bytes: a getter that changes the root
//! object's keys makes the walk write its count again, and the JS thread then reads the
//! whole tape again (as it does if the helper panicked). The helper is not woken while it
//! waits for more of the tape: it looks every [`LOOK_EVERY`] (a wake of the other core
//! cost the caller 13–16 µs, see `lz4::LOOK_EVERY`), and after [`LOOK_FOR`] with nothing
//! new it looks every [`LOOK_SLOWLY`] (the walk is paused: a getter doing slow work) until
//! the end.

use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::tape::{
    encode_end, encode_head, encode_items, encode_tape, same_root, Place, TapeError, ROOT_HEAD,
};
use crate::codec::Encoder;
use crate::error::Error;

/// The tape size at which the walk first asks whether a helper is worth starting (between
/// two root items, then every [`AHEAD_STEP`] bytes until it is).
pub const AHEAD_LOOK: usize = 16 * 1024;

/// The projected tape size (the tape so far, scaled by the root items left) from which
/// the walk starts a helper. Starting one costs the JS thread a thread spawn, about what
/// core's pass over 20–30 KB of tape takes.
pub const AHEAD_WORTH: usize = 64 * 1024;

/// How often the walk publishes, in bytes of tape (at the first root item boundary past
/// each step).
pub const AHEAD_STEP: usize = 8 * 1024;

/// How long [`TapeAhead::finish`] spins for the helper to hand the work back (it does so
/// between two items) before it sleeps until it does: a sleep and its wake cost tens of µs.
const SPIN: Duration = Duration::from_micros(200);

/// How often a helper with nothing new to read looks again.
const LOOK_EVERY: Duration = Duration::from_micros(50);

/// How long a helper with nothing new keeps looking every [`LOOK_EVERY`]: the walk
/// publishes every few KB of tape, every 10–50 µs.
const LOOK_FOR: Duration = Duration::from_millis(2);

/// How often a helper looks after [`LOOK_FOR`] with nothing new. It lives only as long as
/// one walk, so it is not put to sleep for good: a walk paused longer (a getter doing slow
/// work, a descheduled JS thread) goes on being read when it resumes.
const LOOK_SLOWLY: Duration = Duration::from_millis(1);

/// A tape being written by the JS walk on another thread.
pub trait Written: Send {
    /// How many bytes of the tape are written for good: the walk never changes them again,
    /// and they end between two items of the root container.
    fn written(&self) -> usize;
    /// The tape's bytes in `range` (which ends at most where [`Written::written`] told).
    fn bytes(&self, range: Range<usize>) -> &[u8];
}

/// The encoder and how far the tape has been read into it.
struct Work {
    encoder: Encoder,
    place: Place,
    /// Why reading stopped before the end of what was published: the value's refusal, or
    /// the encoder's error, as the reader would have met it on one thread.
    failed: Option<TapeError<Error>>,
}

struct State {
    /// The work when no thread is reading: `None` while the helper reads.
    work: Option<Work>,
    /// The helper panicked while reading: the work is gone (the tape is read again).
    lost: bool,
}

struct Shared {
    state: Mutex<State>,
    max_items: usize,
    /// The JS thread wants the work back: the helper stops between two items and leaves.
    closed: AtomicBool,
    /// The helper waits on it for more of the tape, the JS thread for the work (woken
    /// when the helper puts it back).
    wake: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The helper: reads what is published until the JS thread takes the work back.
    fn help(&self, tape: &dyn Written) {
        let mut state = self.state();
        let mut last_read = Instant::now();
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let written = tape.written();
            let behind = matches!(&state.work,
                Some(work) if work.failed.is_none() && work.place.behind(written));
            if let Some(mut work) = state.work.take_if(|_| behind) {
                drop(state);
                let read = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    // From past the root's head, which the JS thread may write again.
                    encode_items(
                        tape.bytes(ROOT_HEAD..written),
                        ROOT_HEAD,
                        self.max_items,
                        &mut work.place,
                        &mut work.encoder,
                        &self.closed,
                    )
                }));
                state = self.state();
                match read {
                    Ok(read) => {
                        work.failed = read.err();
                        state.work = Some(work);
                    }
                    // A bug; the JS thread reports it rather than wait.
                    Err(_) => state.lost = true,
                }
                self.wake.notify_all();
                last_read = Instant::now();
            } else {
                let look = match last_read.elapsed() < LOOK_FOR {
                    true => LOOK_EVERY,
                    false => LOOK_SLOWLY,
                };
                state = self
                    .wake
                    .wait_timeout(state, look)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }

    /// Takes the work back from the helper: it leaves, after the item it is reading
    /// (`None`: it panicked while reading).
    fn take(&self) -> Option<Work> {
        self.closed.store(true, Ordering::Release);
        let mut state = self.state();
        let waiting = Instant::now();
        loop {
            if let Some(work) = state.work.take() {
                return Some(work);
            }
            if state.lost {
                return None;
            }
            if waiting.elapsed() < SPIN {
                drop(state);
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
                state = self.state();
            } else {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

/// The tape of one value read on a helper thread while it is written (module docs).
pub struct TapeAhead {
    shared: Arc<Shared>,
    /// Taken back ([`TapeAhead::finish`]).
    done: bool,
}

impl std::fmt::Debug for TapeAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapeAhead").finish_non_exhaustive()
    }
}

impl TapeAhead {
    /// A helper thread reading `tape` into `encoder` as it is published, called on the
    /// thread writing the tape while it does not (the root's head is read here); the
    /// encoder back when no thread can be spawned. `max_items` as for
    /// [`super::tape::encode_tape`].
    ///
    /// # Errors
    /// The encoder, when no thread can be spawned (a WASI component).
    pub fn start(
        encoder: Encoder,
        max_items: usize,
        tape: Box<dyn Written>,
    ) -> Result<TapeAhead, Box<Encoder>> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                work: None,
                lost: false,
            }),
            max_items,
            closed: AtomicBool::new(false),
            wake: Condvar::new(),
        });
        // Read here, where the tape is not being written: the helper starts past it.
        let mut encoder = encoder;
        let head = encode_head(tape.bytes(0..ROOT_HEAD), max_items, &mut encoder);
        let helper = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("polycache-tape".into())
            // The reader recurses once per level of nesting, to `MAX_DEPTH`.
            // Reserved, not committed: a debug build's frames at 256 levels need about 1 MiB.
            .stack_size(4 * 1024 * 1024)
            .spawn(move || helper.help(&*tape));
        if spawned.is_err() {
            return Err(Box::new(encoder));
        }
        let (place, failed) = match head {
            Ok(place) => (place, None),
            Err(err) => (Place::default(), Some(err)),
        };
        // The helper finds it when it first looks (a new thread takes longer to run).
        shared.state().work = Some(Work {
            encoder,
            place,
            failed,
        });
        Ok(TapeAhead {
            shared,
            done: false,
        })
    }

    /// The encoder with the whole `tape` read into it: what the helper read, and the rest
    /// read here. `tape` is the walk's whole tape (the bytes the helper saw, and the rest).
    /// If a getter changed the root object's keys while the helper read it, the tape is
    /// read again here, into `again()`.
    ///
    /// # Errors
    /// As [`super::tape::encode_tape`].
    pub fn finish(
        mut self,
        tape: &[u8],
        again: impl FnOnce() -> Encoder,
    ) -> Result<Encoder, TapeError<Error>> {
        self.done = true;
        // A head read with a count the walk wrote again, or never read (it failed), or a
        // helper that panicked: the whole tape on this thread.
        // So is a tape the MessagePack path handed to the general reader.
        let max_items = self.shared.max_items;
        let work = self.shared.take();
        let Some(mut work) = work.filter(|work| same_root(tape, &work.place) && !work.place.redo())
        else {
            return whole(tape, max_items, again());
        };
        if let Some(failed) = work.failed {
            return Err(failed);
        }
        let never = AtomicBool::new(false);
        encode_items(
            tape,
            0,
            max_items,
            &mut work.place,
            &mut work.encoder,
            &never,
        )?;
        if work.place.redo() {
            return whole(tape, max_items, again());
        }
        encode_end(tape, &work.place, &mut work.encoder)?;
        Ok(work.encoder)
    }
}

/// The whole tape read into `encoder` on this thread.
fn whole(tape: &[u8], max_items: usize, mut encoder: Encoder) -> Result<Encoder, TapeError<Error>> {
    encode_tape(tape, max_items, &mut encoder)?;
    Ok(encoder)
}

impl Drop for TapeAhead {
    /// Unfinished (the walk threw): the helper stops reading before the tape can go.
    fn drop(&mut self) {
        if !self.done {
            self.shared.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::codec::js::tape::tests::Tape;
    use crate::codec::js::tape::{ARRAY, FUNCTION, KEY_AGAIN, MAP, STRING_LONE, TRUE};
    use crate::codec::Codec;

    /// A tape written in full, published step by step as the walk would.
    #[derive(Clone)]
    struct Publishing {
        tape: Arc<Vec<u8>>,
        published: Arc<AtomicUsize>,
    }

    impl Written for Publishing {
        fn written(&self) -> usize {
            self.published.load(Ordering::Acquire)
        }
        fn bytes(&self, range: Range<usize>) -> &[u8] {
            &self.tape[range]
        }
    }

    /// A record dict as the walk writes it, and where each of its entries ends.
    fn records(n: usize) -> (Tape, Vec<usize>) {
        let mut tape = Tape::default().tag(MAP).len(n);
        let mut ends = Vec::new();
        for i in 0..n {
            tape = tape.str(&format!("field_{i}")).tag(MAP).len(3);
            tape = if i == 0 {
                tape.str("id")
                    .num(i as f64)
                    .str("score")
                    .num(i as f64 * 1.5)
                    .str("tags")
            } else {
                let again = tape.tag(KEY_AGAIN).num(i as f64).tag(KEY_AGAIN);
                again.num(i as f64 * 1.5).tag(KEY_AGAIN)
            };
            tape = tape.tag(ARRAY).len(3).numbers(&[0.5, 2.0]).tag(TRUE);
            ends.push(tape.0.len());
        }
        (tape, ends)
    }

    /// A list of records and floats, and where each item (or run of numbers) ends.
    fn list(n: usize) -> (Tape, Vec<usize>) {
        let mut tape = Tape::default().tag(ARRAY).len(n * 3);
        let mut ends = Vec::new();
        for i in 0..n {
            tape = tape.tag(MAP).len(1).str("name").str(&format!("user {i}"));
            ends.push(tape.0.len());
            tape = tape.numbers(&[i as f64 + 0.25, i as f64]);
            ends.push(tape.0.len());
        }
        (tape, ends)
    }

    fn one_thread(tape: &[u8], max_items: usize) -> Result<Vec<u8>, String> {
        let mut encoder = Encoder::new(Codec::Msgpack);
        encode_tape(tape, max_items, &mut encoder).map_err(describe)?;
        Ok(encoder
            .finish()
            .map_err(|e| e.to_string())?
            .into_payload()
            .into_vec())
    }

    fn describe(err: TapeError<Error>) -> String {
        match err {
            TapeError::Refused(m) => m,
            TapeError::Malformed(e) | TapeError::Host(e) => e.to_string(),
        }
    }

    /// How far the helper has read, once it has put the work back.
    fn read_so_far(ahead: &TapeAhead) -> Option<usize> {
        let state = ahead.shared.state();
        state.work.as_ref().map(|work| work.place.at)
    }

    /// The tape read ahead: published at `steps` (entry ends), waiting at each for the
    /// helper to have read it, then finished with the whole tape.
    fn ahead(tape: &[u8], steps: &[usize], max_items: usize) -> Result<Vec<u8>, String> {
        ahead_then(tape, steps, tape, max_items)
    }

    /// [`ahead`], the helper reading `published` and the JS thread finishing with `whole`.
    fn ahead_then(
        published: &[u8],
        steps: &[usize],
        tape: &[u8],
        max_items: usize,
    ) -> Result<Vec<u8>, String> {
        let publishing = Publishing {
            tape: Arc::new(published.to_vec()),
            published: Arc::new(AtomicUsize::new(0)),
        };
        let encoder = Encoder::new(Codec::Msgpack);
        let ahead = TapeAhead::start(encoder, max_items, Box::new(publishing.clone()))
            .unwrap_or_else(|_| panic!("no thread"));
        for &step in steps {
            publishing.published.store(step, Ordering::Release);
            let deadline = Instant::now() + Duration::from_secs(10);
            // The helper stops at a refusal, or at what its MessagePack path leaves to the
            // general reader: it has read what it will when the work is back and reading
            // stopped or caught up.
            while read_so_far(&ahead) != Some(step) {
                let failed = ahead
                    .shared
                    .state()
                    .work
                    .as_ref()
                    .is_some_and(|w| w.failed.is_some() || w.place.redo());
                if failed {
                    break;
                }
                assert!(Instant::now() < deadline, "the helper never read to {step}");
                std::thread::yield_now();
            }
        }
        let encoder = ahead
            .finish(tape, || Encoder::new(Codec::Msgpack))
            .map_err(describe)?;
        Ok(encoder
            .finish()
            .map_err(|e| e.to_string())?
            .into_payload()
            .into_vec())
    }

    #[test]
    fn a_tape_read_ahead_is_the_payload_read_on_one_thread() {
        for (tape, ends) in [records(300), list(200)] {
            let expected = one_thread(&tape.0, 100_000).unwrap();
            let every: Vec<usize> = ends.clone();
            let some: Vec<usize> = ends.iter().copied().step_by(37).collect();
            let last = ends.last().copied().into_iter().collect::<Vec<_>>();
            // Read ahead in every item, in some, all at once, or not at all (the JS thread
            // reads it all); the tape's last bytes always go to the JS thread when finished.
            for steps in [every, some, last, Vec::new()] {
                assert_eq!(ahead(&tape.0, &steps, 100_000).unwrap(), expected);
            }
        }
    }

    #[test]
    fn refusals_read_ahead_are_the_refusals_read_on_one_thread() {
        // A function in the middle: the walk stops there, with its stop tag last.
        let (tape, ends) = records(100);
        let mut cut = Tape(tape.0[..ends[49]].to_vec());
        cut = cut.str("next").tag(FUNCTION);
        let expected = one_thread(&cut.0, 1000).unwrap_err();
        assert_eq!(expected, "a function cannot be cached");
        assert_eq!(ahead(&cut.0, &ends[..50], 1000).unwrap_err(), expected);
        assert_eq!(ahead(&cut.0, &[], 1000).unwrap_err(), expected);
        // A refusal inside an entry the helper reads: its MessagePack path hands the
        // whole tape to the general reader, which words it.
        let entry = Tape::default().str("lone").text(STRING_LONE, "a\u{FFFD}").0;
        let mut lone = tape.0[..ends[29]].to_vec();
        lone.extend_from_slice(&entry);
        lone.extend_from_slice(&tape.0[ends[29]..]);
        lone[1..5].copy_from_slice(&101u32.to_le_bytes());
        let mut steps = ends[..30].to_vec();
        steps.extend(ends[29..].iter().map(|end| end + entry.len()));
        let expected = one_thread(&lone, 1000).unwrap_err();
        assert!(expected.contains("lone surrogates"), "{expected}");
        assert_eq!(ahead(&lone, &steps, 1000).unwrap_err(), expected);
        // More entries than the cap: refused at the root's head, on either thread.
        let (tape, ends) = records(20);
        let expected = one_thread(&tape.0, 10).unwrap_err();
        assert!(
            expected.contains("an object of 20 properties"),
            "{expected}"
        );
        assert_eq!(ahead(&tape.0, &ends[..1], 10).unwrap_err(), expected);
    }

    #[test]
    fn a_root_whose_keys_changed_while_read_ahead_is_read_again() {
        // Published with 30 entries, 20 read ahead; then a getter added one, and the walk
        // wrote the count again.
        let (tape, ends) = records(30);
        let mut grown = Tape(tape.0.clone()).str("added").tag(TRUE);
        grown.0[1..5].copy_from_slice(&31u32.to_le_bytes());
        let expected = one_thread(&grown.0, 1000).unwrap();
        assert_eq!(
            ahead_then(&tape.0, &ends[..20], &grown.0, 1000).unwrap(),
            expected
        );
        // One fewer (a getter deleted a key not walked yet).
        let mut shrunk = Tape(tape.0[..ends[28]].to_vec());
        shrunk.0[1..5].copy_from_slice(&29u32.to_le_bytes());
        let expected = one_thread(&shrunk.0, 1000).unwrap();
        assert_eq!(
            ahead_then(&tape.0, &ends[..20], &shrunk.0, 1000).unwrap(),
            expected
        );
    }

    #[test]
    fn a_read_ahead_dropped_unfinished_lets_its_helper_go() {
        let (tape, ends) = records(50);
        let publishing = Publishing {
            tape: Arc::new(tape.0),
            published: Arc::new(AtomicUsize::new(ends[10])),
        };
        let ahead = TapeAhead::start(
            Encoder::new(Codec::Msgpack),
            1000,
            Box::new(publishing.clone()),
        )
        .unwrap_or_else(|_| panic!("no thread"));
        let shared = ahead.shared.clone();
        drop(ahead);
        // The helper leaves (and drops its view of the tape) once the work is taken back.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&publishing.tape) > 1 || Arc::strong_count(&shared) > 1 {
            assert!(Instant::now() < deadline, "the helper did not leave");
            std::thread::yield_now();
        }
    }
}
