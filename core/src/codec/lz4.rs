//! LZ4 compression of a payload: the same bytes on every target, on two threads when it
//! is large, and while it is still being written when an encoder writes it.
//!
//! The envelope holds one LZ4 block (FORMAT.md §1). `lz4_flex` hashes an input of 64 KiB or
//! more differently on 64-bit and 32-bit targets (a WASI component is 32-bit), so one pass
//! over a large payload gave a native writer and the component different bytes for the
//! same value (measured: from about 64 KiB of payload up; "the same value bytes from every
//! runtime" is a product promise). So a payload is compressed in [`CHUNK`]-byte pieces,
//! each with the 16-bit table whose hash is the same everywhere, and the pieces' blocks
//! are joined into one valid block: each block's last sequence (literals only) is merged
//! into the next block's first sequence. A block's matches never reach before its own
//! start (it was compressed alone), so they stay valid once its data follows the previous
//! piece's. Every LZ4 block decoder reads the result; the format does not change.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The largest piece `lz4_flex` compresses with its 16-bit hash table (its input must be
/// shorter than `u16::MAX`), whose hash does not depend on the target's word size.
pub const CHUNK: usize = u16::MAX as usize - 1;

/// Payloads from this size on are compressed on two threads when they reach [`compress`]
/// whole: the pieces of the second half go to an [`Ahead`] helper. Measured in core
/// (release, best of 20–30, the 1 MB records value's payload, one pass before the pieces):
/// 630 KB took 757–830 µs on one thread and 521–708 on two, 270 KB 320–396 against
/// 280–348. The helper costs a spawn and the copies, against about 1.25 µs per KB of
/// compression. A helper kept between calls measured worse on this VM: waking it took
/// longer than spawning a new one (63 KB: 50 µs on one thread, 87–92 with it).
pub const PARALLEL_FROM: usize = 256 * 1024;

/// `payload` as one LZ4 block: the same bytes whichever thread compressed which piece, and
/// on every target.
pub fn compress(payload: &[u8]) -> Vec<u8> {
    if payload.len() <= CHUNK {
        return lz4_flex::block::compress(payload);
    }
    if payload.len() >= PARALLEL_FROM {
        if let Some(mut ahead) = Ahead::start() {
            let pieces: Vec<&[u8]> = payload.chunks(CHUNK).collect();
            let half = pieces.len() / 2;
            for (index, piece) in pieces.iter().enumerate().skip(half) {
                ahead.hand(index, piece);
            }
            return ahead.finish(payload);
        }
    }
    in_pieces(payload)
}

/// `payload`'s pieces compressed and joined on this thread.
pub(crate) fn in_pieces(payload: &[u8]) -> Vec<u8> {
    match Joined::join(payload.chunks(CHUNK).map(Joined::piece)) {
        Ok(Some(joined)) => joined.block,
        // A malformed block (never from `lz4_flex`), or no payload.
        _ => lz4_flex::block::compress(payload),
    }
}

/// How long [`Ahead::finish`] spins for the piece the helper is compressing: at most a
/// piece's work is left (about 60 µs). Past it (the helper was descheduled), the caller
/// compresses the helper's pieces itself rather than wait for the scheduler: a call's
/// wait is bounded by this, not by when a thread next runs.
const SPIN: Duration = Duration::from_micros(150);

/// How often a helper with no piece looks for one while pieces may still come. Nothing
/// wakes it then: a wake of the other core cost the caller 13–16 µs per piece handed
/// here, more than the piece's copy.
const LOOK_EVERY: Duration = Duration::from_micros(50);

/// How long a helper with no piece keeps looking before it sleeps until woken: pieces
/// come every 0.1–0.7 ms while a value is written (Python, Node), so a longer pause means
/// the walk is over and the value waits for something else (a write-through writer, the
/// rest of a batch) before it is sealed.
const LOOK_FOR: Duration = Duration::from_millis(2);

/// Pieces of a payload compressed on a helper thread while this thread does something
/// else: writes the rest of the payload (an [`super::Encoder`] hands each piece as soon as
/// it is complete), or compresses other pieces ([`compress`]). The helper takes the
/// pieces one by one, from a copy; [`Ahead::finish`] takes back those it has not started
/// and compresses them itself, so the caller only ever waits, for at most [`SPIN`], for
/// the one piece the helper is compressing, never for a helper to be scheduled (no free
/// core, or no threads at all in a WASI component: then nothing is handed and this thread
/// does it all). The bytes
/// are the same whoever compressed which piece. Dropped unfinished (a rewound encoder, a
/// value stored uncompressed), it tells the helper to stop after its current piece. The
/// helper is not woken while it looks for pieces (every [`LOOK_EVERY`], for [`LOOK_FOR`]
/// after its last one); once it sleeps, the next piece, or the end, wakes it.
pub struct Ahead {
    shared: Arc<Shared>,
    /// The indexes of the pieces handed (consecutive).
    handed: Range<usize>,
}

impl std::fmt::Debug for Ahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ahead")
            .field("handed", &self.handed)
            .finish_non_exhaustive()
    }
}

/// What the caller and the helper share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// The helper sleeps on it: for [`LOOK_EVERY`] at a time, then until notified.
    pause: Condvar,
}

struct State {
    /// Pieces handed and not started: (index, a copy of the bytes).
    queue: VecDeque<(usize, Vec<u8>)>,
    /// The pieces the helper compressed, joined: the first of those handed on, as it takes
    /// them in order.
    run: Result<Option<Joined>, Malformed>,
    /// How many pieces `run` holds.
    ran: usize,
    /// The helper is compressing a piece it took from the queue.
    busy: bool,
    /// The helper sleeps until notified (see [`LOOK_FOR`]).
    asleep: bool,
    /// No more pieces come: the helper leaves once the queue is empty.
    closed: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            queue: VecDeque::new(),
            run: Ok(None),
            ran: 0,
            busy: false,
            asleep: false,
            closed: false,
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The helper thread: compresses pieces until the work is closed and none is left.
    fn help(&self) {
        let mut state = self.state();
        let mut last_piece = Instant::now();
        loop {
            if let Some((_, piece)) = state.queue.pop_front() {
                state.busy = true;
                let run = std::mem::replace(&mut state.run, Ok(None));
                drop(state);
                // Joined here too, off the caller's path: finding where a block's last
                // sequence starts walks all of it, and joining copies it.
                let run = run.and_then(|run| {
                    let piece = Joined::piece(&piece)?;
                    match run {
                        None => Ok(Some(piece)),
                        Some(run) => run.append(piece).map(Some).ok_or(Malformed),
                    }
                });
                state = self.state();
                state.run = run;
                state.ran += 1;
                state.busy = false;
                last_piece = Instant::now();
            } else if state.closed {
                return;
            } else if last_piece.elapsed() < LOOK_FOR {
                state = self
                    .pause
                    .wait_timeout(state, LOOK_EVERY)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            } else {
                state.asleep = true;
                state = self
                    .pause
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                state.asleep = false;
                last_piece = Instant::now();
            }
        }
    }
}

impl Ahead {
    /// A helper thread waiting for pieces; `None` when no thread can be spawned.
    pub fn start() -> Option<Ahead> {
        let shared = Arc::new(Shared::default());
        let helper = shared.clone();
        std::thread::Builder::new()
            .name("polycache-lz4".into())
            .stack_size(64 * 1024)
            .spawn(move || helper.help())
            .ok()?;
        Some(Ahead {
            shared,
            handed: 0..0,
        })
    }

    /// How many pieces were handed (the first `handed()` of the payload, when the pieces
    /// were handed from the first on).
    pub fn handed(&self) -> usize {
        self.handed.end
    }

    /// Hands piece `index` of the payload (`CHUNK` bytes, the last one possibly fewer); the
    /// pieces handed are consecutive.
    pub fn hand(&mut self, index: usize, piece: &[u8]) {
        debug_assert!(self.handed.is_empty() || index == self.handed.end);
        if self.handed.is_empty() {
            self.handed = index..index;
        }
        self.handed.end = index + 1;
        let copy = piece.to_vec();
        let mut state = self.shared.state();
        state.queue.push_back((index, copy));
        if state.asleep {
            self.shared.pause.notify_one();
        }
    }

    /// No more pieces: the helper leaves once it has none (woken if it sleeps).
    fn close(&self, state: &mut State) {
        state.closed = true;
        if state.asleep {
            self.shared.pause.notify_one();
        }
    }

    /// `payload` as one LZ4 block ([`compress`]'s bytes): its pieces compressed here, but
    /// those the helper compressed or is compressing. The pieces handed must be those of
    /// `payload`. The helper goes on taking pieces from the front of its queue while this
    /// thread compresses the pieces never handed, then takes the queue's pieces back from
    /// its end, so pieces handed late (a split walk joins half the payload at its end) are
    /// compressed on both threads.
    pub fn finish(self, payload: &[u8]) -> Vec<u8> {
        let pieces: Vec<&[u8]> = payload.chunks(CHUNK).collect();
        let handed = self.handed.start.min(pieces.len())..self.handed.end.min(pieces.len());
        {
            let mut state = self.shared.state();
            self.close(&mut state);
        }
        // The pieces before those handed (`compress`'s first half) and after them (the
        // last, short piece), while the helper works.
        let before = Joined::join(
            pieces[..handed.start]
                .iter()
                .map(|piece| Joined::piece(piece)),
        );
        let after = Joined::join(
            pieces[handed.end..]
                .iter()
                .map(|piece| Joined::piece(piece)),
        );
        // Then those it has not started, from the end of its queue, one at a time.
        let mut taken_back = Vec::new();
        loop {
            let mut state = self.shared.state();
            let Some((_, piece)) = state.queue.pop_back() else {
                break;
            };
            drop(state);
            taken_back.push(Joined::piece(&piece));
        }
        taken_back.reverse();
        let helped = handed.start..handed.end - taken_back.len().min(handed.len());
        // Then the piece the helper is compressing, for at most `SPIN`; past that, or if
        // its pieces did not join, they are compressed here too.
        let waiting = Instant::now();
        let mut state = self.shared.state();
        while state.busy && waiting.elapsed() < SPIN {
            drop(state);
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            state = self.shared.state();
        }
        let run = match !state.busy && state.ran == helped.len() {
            true => std::mem::replace(&mut state.run, Ok(None)),
            false => Err(Malformed),
        };
        drop(state);
        let run =
            run.or_else(|_| Joined::join(pieces[helped].iter().map(|piece| Joined::piece(piece))));
        let taken_back = Joined::join(taken_back.into_iter());
        let parts = [before, run, taken_back, after];
        let joined = parts
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .and_then(|parts| Joined::join(parts.into_iter().flatten().map(Ok)));
        match joined {
            Ok(Some(joined)) => joined.block,
            _ => in_pieces(payload),
        }
    }
}

impl Drop for Ahead {
    /// The helper leaves after its current piece.
    fn drop(&mut self) {
        let mut state = self.shared.state();
        self.close(&mut state);
        state.queue.clear();
    }
}

/// A block that cannot be joined (never one from `lz4_flex`): the payload is then
/// compressed in one pass.
#[derive(Debug)]
struct Malformed;

/// One LZ4 block being built from the blocks of consecutive pieces, and where its last
/// sequence starts (so appending never walks what is already joined).
struct Joined {
    block: Vec<u8>,
    last: usize,
}

impl Joined {
    /// One piece compressed.
    fn piece(piece: &[u8]) -> Result<Joined, Malformed> {
        let block = lz4_flex::block::compress(piece);
        let last = last_sequence(&block).ok_or(Malformed)?;
        Ok(Joined { block, last })
    }

    /// Consecutive pieces joined (`None` for none).
    fn join(
        pieces: impl Iterator<Item = Result<Joined, Malformed>>,
    ) -> Result<Option<Joined>, Malformed> {
        let pieces: Vec<Joined> = pieces.collect::<Result<_, _>>()?;
        // One buffer for the whole block: each seam adds a token and up to a few length
        // bytes (a literal run's length takes a byte per 255).
        let total: usize = pieces.iter().map(|piece| piece.block.len() + 16).sum();
        let mut pieces = pieces.into_iter();
        let Some(mut joined) = pieces.next() else {
            return Ok(None);
        };
        joined
            .block
            .reserve_exact(total.saturating_sub(joined.block.len()));
        for piece in pieces {
            joined = joined.append(piece).ok_or(Malformed)?;
        }
        Ok(Some(joined))
    }

    /// This block followed by `tail`: this block's last literals are merged into the tail's
    /// first sequence (one token: the tail's match length, the summed literal length).
    fn append(mut self, tail: Joined) -> Option<Joined> {
        let (head_literals, head_literal_len) = literals(&self.block, self.last)?;
        if self.block[self.last] & 0x0f != 0 || head_literals + head_literal_len != self.block.len()
        {
            return None;
        }
        let (tail_literals, tail_literal_len) = literals(&tail.block, 0)?;
        if tail_literals.checked_add(tail_literal_len)? > tail.block.len() {
            return None;
        }
        let literal_len = head_literal_len + tail_literal_len;
        let moved = self.block.split_off(head_literals);
        let merged = self.last;
        self.block.truncate(merged);
        self.block.reserve(16 + moved.len() + tail.block.len());
        self.block
            .push((literal_len.min(15) as u8) << 4 | (tail.block[0] & 0x0f));
        if literal_len >= 15 {
            let mut left = literal_len - 15;
            while left >= 255 {
                self.block.push(255);
                left -= 255;
            }
            self.block.push(left as u8);
        }
        self.block.extend_from_slice(&moved);
        // Where the tail's bytes from its first literals on now start.
        let shift = self.block.len();
        self.block.extend_from_slice(&tail.block[tail_literals..]);
        self.last = match tail.last {
            0 => merged,
            last => shift + (last - tail_literals),
        };
        Some(self)
    }
}

/// Where the last sequence of `block` starts.
fn last_sequence(block: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let (start, len) = literals(block, at)?;
        let end = start.checked_add(len)?;
        if end == block.len() {
            return Some(at);
        }
        // The match: a two-byte offset, then the extra length bytes of a long match.
        let mut next = end.checked_add(2)?;
        if block.get(at)? & 0x0f == 0x0f {
            while *block.get(next)? == 255 {
                next += 1;
            }
            next += 1;
        }
        if next >= block.len() {
            return None;
        }
        at = next;
    }
}

/// Where the literals of the sequence at `at` start, and how many there are.
fn literals(block: &[u8], at: usize) -> Option<(usize, usize)> {
    let token = *block.get(at)?;
    let mut len = usize::from(token >> 4);
    let mut next = at + 1;
    if len == 15 {
        loop {
            let byte = *block.get(next)?;
            next += 1;
            len += usize::from(byte);
            if byte != 255 {
                break;
            }
        }
    }
    Some((next, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(bytes: &[u8]) -> Joined {
        let block = lz4_flex::block::compress(bytes);
        let last = last_sequence(&block).expect("a block from lz4_flex");
        Joined { block, last }
    }

    /// Appends, checking that the tracked last sequence is where a walk finds it.
    fn append(head: Joined, tail: Joined) -> Option<Joined> {
        let joined = head.append(tail)?;
        assert_eq!(last_sequence(&joined.block), Some(joined.last));
        Some(joined)
    }

    fn round_trips(payload: &[u8]) -> Vec<u8> {
        let block = compress(payload);
        assert_eq!(
            lz4_flex::block::decompress(&block, payload.len()).unwrap(),
            payload
        );
        block
    }

    /// Records-like bytes: repetitive with some variety, as a cache payload is.
    fn records(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 64);
        let mut i = 0u32;
        while out.len() < len {
            out.extend_from_slice(format!("\u{85}\u{a2}id{i}\u{a4}name\u{a7}user {i}").as_bytes());
            i = i.wrapping_mul(2_654_435_761).wrapping_add(1);
        }
        out.truncate(len);
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    #[test]
    fn a_large_payload_is_one_block_of_its_pieces() {
        for len in [CHUNK, CHUNK + 1, 3 * CHUNK, PARALLEL_FROM, 700_000] {
            let payload = records(len);
            let block = round_trips(&payload);
            // The pieces joined, not the one-pass fallback, and the same bytes however
            // the pieces were shared between threads (a WASI component has none).
            let pieces: Vec<&[u8]> = payload.chunks(CHUNK).collect();
            let pieces = pieces.iter().map(|piece| Joined::piece(piece));
            let joined = Joined::join(pieces).unwrap().unwrap();
            assert_eq!(block, joined.block, "{len}");
        }
        let noise = noise(PARALLEL_FROM * 2);
        round_trips(&noise);
        let mut mixed = records(PARALLEL_FROM);
        mixed.extend_from_slice(&noise[..PARALLEL_FROM]);
        round_trips(&mixed);
        mixed.reverse();
        round_trips(&mixed);
        round_trips(&vec![7u8; PARALLEL_FROM * 2]);
    }

    #[test]
    fn pieces_compressed_ahead_give_the_same_bytes() {
        let payload = records(5 * CHUNK + 1_000);
        let pieces: Vec<&[u8]> = payload.chunks(CHUNK).collect();
        let expected = in_pieces(&payload);
        assert_eq!(compress(&payload), expected);
        // Handed from the first piece (an encoder's), from the middle (`compress`'s), all
        // of them, none; finished at once (most taken back), and once the helper compressed
        // them all.
        for handed in [0..0, 0..1, 0..3, 0..5, 0..6, 3..6, 2..4] {
            for wait in [false, true] {
                let mut ahead = Ahead::start().expect("a thread");
                for index in handed.clone() {
                    ahead.hand(index, pieces[index]);
                }
                if wait {
                    until(|| ahead.shared.state().ran == handed.len());
                }
                assert_eq!(ahead.finish(&payload), expected, "{handed:?} {wait}");
            }
        }
    }

    /// Polls `done` until it holds, for at most 10 s.
    fn until(done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "not within 10 s");
            std::thread::yield_now();
        }
    }

    /// An `Ahead` with no thread behind it, the first `handed` pieces of `payload` handed:
    /// a test then plays the helper's part on its state.
    fn threadless(payload: &[u8], handed: usize) -> Ahead {
        let mut ahead = Ahead {
            shared: Arc::new(Shared::default()),
            handed: 0..0,
        };
        for (index, piece) in payload.chunks(CHUNK).enumerate().take(handed) {
            ahead.hand(index, piece);
        }
        ahead
    }

    #[test]
    fn a_helper_stuck_on_a_piece_does_not_hold_the_caller() {
        // As if the helper had taken the first piece and was never scheduled again: there
        // is no thread. The caller compresses that piece itself once `SPIN` is over.
        let payload = records(4 * CHUNK);
        let ahead = threadless(&payload, 3);
        {
            let mut state = ahead.shared.state();
            state.queue.pop_front();
            state.busy = true;
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        let caller = payload.clone();
        std::thread::spawn(move || {
            let _ = sender.send(ahead.finish(&caller));
        });
        let block = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("finish returned, not waiting for the stuck piece");
        assert_eq!(block, in_pieces(&payload));
    }

    #[test]
    fn finish_takes_back_from_the_end_what_the_helper_has_not_started() {
        // As if the helper had compressed the first two of five pieces handed and stopped
        // (no thread): the caller takes the last three back, and the block is the same.
        let payload = records(5 * CHUNK + 1_000);
        let pieces: Vec<&[u8]> = payload.chunks(CHUNK).collect();
        let ahead_of = |helped: usize| {
            let ahead = threadless(&payload, 5);
            let mut state = ahead.shared.state();
            for _ in 0..helped {
                state.queue.pop_front();
            }
            state.run = Joined::join(pieces[..helped].iter().map(|piece| Joined::piece(piece)));
            state.ran = helped;
            drop(state);
            ahead
        };
        for helped in 0..=5 {
            assert_eq!(
                ahead_of(helped).finish(&payload),
                in_pieces(&payload),
                "{helped}"
            );
        }
    }

    #[test]
    fn a_helper_sleeps_when_no_piece_comes_and_leaves_when_told() {
        let payload = records(3 * CHUNK);
        let pieces: Vec<&[u8]> = payload.chunks(CHUNK).collect();
        // Asleep, then woken by a piece, which it compresses; woken again by the end.
        let mut ahead = Ahead::start().expect("a thread");
        let shared = ahead.shared.clone();
        until(|| shared.state().asleep);
        ahead.hand(0, pieces[0]);
        until(|| shared.state().ran == 1);
        until(|| shared.state().asleep);
        assert_eq!(ahead.finish(&payload), in_pieces(&payload));
        until(|| Arc::strong_count(&shared) == 1);
        // Dropped unfinished, asleep or looking for pieces: it leaves too.
        for asleep in [true, false] {
            let mut ahead = Ahead::start().expect("a thread");
            let shared = ahead.shared.clone();
            ahead.hand(0, pieces[0]);
            if asleep {
                until(|| shared.state().asleep);
            }
            drop(ahead);
            until(|| Arc::strong_count(&shared) == 1);
        }
    }

    #[test]
    fn joining_covers_every_literal_length_at_the_seam() {
        // Blocks whose seam literals are short, exactly 15, and long (extra length bytes
        // on either side and in the sum), and blocks that are one literal run.
        for head_len in [1usize, 5, 14, 15, 16, 269, 270, 600] {
            for tail_len in [1usize, 5, 13, 14, 15, 254, 255, 600] {
                let head = noise(head_len);
                let mut tail: Vec<u8> = (0..tail_len as u32)
                    .map(|i| (i.wrapping_mul(40_503) >> 3) as u8)
                    .collect();
                let bare = tail.clone();
                tail.extend_from_slice(&[9u8; 100]);
                tail.extend_from_slice(b"the end.");
                for tail in [tail, bare] {
                    let joined = append(block(&head), block(&tail)).unwrap();
                    let mut whole = head.clone();
                    whole.extend_from_slice(&tail);
                    assert_eq!(
                        lz4_flex::block::decompress(&joined.block, whole.len()).unwrap(),
                        whole,
                        "head {head_len}, tail {tail_len}"
                    );
                }
            }
        }
    }

    #[test]
    fn grouping_does_not_change_the_bytes() {
        let parts = [
            records(900),
            noise(40),
            records(3000),
            noise(300),
            records(50),
        ];
        let left = parts.iter().skip(1).fold(block(&parts[0]), |joined, part| {
            append(joined, block(part)).unwrap()
        });
        let right = append(
            append(block(&parts[0]), block(&parts[1])).unwrap(),
            append(
                append(block(&parts[2]), block(&parts[3])).unwrap(),
                block(&parts[4]),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(left.block, right.block);
        let whole = parts.concat();
        assert_eq!(
            lz4_flex::block::decompress(&left.block, whole.len()).unwrap(),
            whole
        );
    }

    #[test]
    fn malformed_blocks_do_not_join() {
        let joined = |head: Vec<u8>, last, tail: Vec<u8>| {
            Joined { block: head, last }
                .append(Joined {
                    block: tail,
                    last: 0,
                })
                .map(|j| j.block)
        };
        assert_eq!(last_sequence(&[]), None);
        // A head whose last sequence has a match part, and a truncated one.
        assert_eq!(last_sequence(&[0x11, b'a', 1, 0]), None);
        assert_eq!(joined(vec![0x11, b'a', 1, 0], 0, vec![0x10, b'a']), None);
        assert_eq!(last_sequence(&[0xf0, 255]), None);
        // A tail whose literals run past its end.
        assert_eq!(joined(vec![0x10, b'a'], 0, vec![0x30, b'a']), None);
    }
}
