//! LZ4 compression of a payload: the same bytes on every target, on two threads when it
//! is large.
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// The largest piece `lz4_flex` compresses with its 16-bit hash table (its input must be
/// shorter than `u16::MAX`), whose hash does not depend on the target's word size.
pub const CHUNK: usize = u16::MAX as usize - 1;

/// Payloads from this size on are compressed on two threads: the pieces of the second
/// half on a helper thread, spawned per call and given a copy of that half. Measured in
/// core (release, best of 20–30, the 1 MB records value's payload, one pass before the
/// pieces): 630 KB took 757–830 µs on one thread and 521–708 on two, 270 KB 320–396
/// against 280–348. The helper costs a spawn (about 65 µs with a join) and the copy,
/// against about 1.25 µs per KB of compression. A helper kept between calls measured
/// worse on this VM: waking it took longer than spawning a new one (63 KB: 50 µs on one
/// thread, 87–92 with it).
pub const PARALLEL_FROM: usize = 256 * 1024;

/// `payload` as one LZ4 block: the same bytes whichever thread compressed which piece, and
/// on every target.
pub fn compress(payload: &[u8]) -> Vec<u8> {
    if payload.len() <= CHUNK {
        return lz4_flex::block::compress(payload);
    }
    let pieces: Vec<&[u8]> = payload.chunks(CHUNK).collect();
    let joined = if payload.len() < PARALLEL_FROM {
        Joined::of(&pieces)
    } else {
        let (first, second) = pieces.split_at(pieces.len() / 2);
        // Whoever takes the second half first compresses it. The helper gets a copy and is
        // never joined: when it has not started by the time this thread is done with the
        // first half (no free core, or no threads at all in a WASI component), this thread
        // does that half too and returns without waiting for the helper to be scheduled.
        let taken = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = mpsc::sync_channel(1);
        let helper = {
            let taken = taken.clone();
            let bytes = payload[first.len() * CHUNK..].to_vec();
            std::thread::Builder::new()
                .name("polycache-lz4".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    if !taken.swap(true, Ordering::AcqRel) {
                        let pieces: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
                        let _ = sender.send(Joined::of(&pieces));
                    }
                })
        };
        let head = Joined::of(first);
        let tail = match helper.is_ok() && taken.swap(true, Ordering::AcqRel) {
            // The helper has the half and is running: its result is on its way.
            true => receiver.recv().ok().flatten(),
            false => Joined::of(second),
        };
        head.zip(tail).and_then(|(head, tail)| head.append(tail))
    };
    joined.map_or_else(|| lz4_flex::block::compress(payload), |joined| joined.block)
}

/// One LZ4 block being built from the blocks of consecutive pieces, and where its last
/// sequence starts (so appending never walks what is already joined).
struct Joined {
    block: Vec<u8>,
    last: usize,
}

impl Joined {
    /// The pieces compressed one by one and joined; `None` only for a malformed block
    /// (never from `lz4_flex`).
    fn of(pieces: &[&[u8]]) -> Option<Joined> {
        let mut pieces = pieces.iter().map(|piece| {
            let block = lz4_flex::block::compress(piece);
            let last = last_sequence(&block)?;
            Some(Joined { block, last })
        });
        let mut joined = pieces.next()??;
        for piece in pieces {
            joined = joined.append(piece?)?;
        }
        Some(joined)
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
            assert_eq!(block, Joined::of(&pieces).unwrap().block, "{len}");
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
