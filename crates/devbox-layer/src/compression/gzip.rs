//! Gzip on all cores, as pigz does it: the input is cut into fixed-size
//! chunks, each compressed on its own thread as raw deflate primed with the
//! last 32 KiB of the chunk before (so matches reach across the cut) and
//! ended with a sync flush (so it stops on a byte boundary); the chunks,
//! joined in order behind one header, an empty final block and a trailer
//! with the combined CRC32, form one ordinary gzip member.
//!
//! One member rather than one per chunk, because some readers stop after
//! the first member of a multi-member file; a single member is what every
//! gzip reader, and `gzip -l`, expects. The output depends only on the input
//! (chunk size and level are fixed), never on the number of threads, so a
//! layer's blob digest is the same on any machine.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress};

/// Input bytes per chunk: large enough that the 4-byte sync marks and the
/// primed restarts cost nothing measurable, small enough that a few chunks
/// per thread stay a few MiB.
pub(super) const CHUNK: usize = 1 << 20;
/// The deflate window: what a chunk's compressor is primed with.
const WINDOW: usize = 32 * 1024;
/// Chunks in flight per thread: one compressing, one queued.
const IN_FLIGHT_PER_THREAD: usize = 2;
/// Gzip header: magic, deflate, no flags, no mtime, "fastest" (level 1), unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff];
/// A final, empty, fixed-Huffman deflate block: the end of the stream.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

struct Job {
    seq: u64,
    dict: Vec<u8>,
    data: Vec<u8>,
}

struct Done {
    seq: u64,
    deflated: io::Result<Vec<u8>>,
    crc: Crc,
    data: Vec<u8>,
}

/// Threads that compress chunks, and the channels to and from them.
struct Workers {
    jobs: Vec<Sender<Job>>,
    done: Receiver<Done>,
    handles: Vec<JoinHandle<()>>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the job channels ends the threads after their current chunk.
        self.jobs.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

/// A gzip encoder writing one member to `out`, compressing on `threads` threads.
pub(super) struct ParallelGzip<W: Write> {
    out: W,
    level: u32,
    chunk: Vec<u8>,
    /// The tail of the last chunk handed out, to prime the next one.
    dict: Vec<u8>,
    workers: Option<Workers>,
    next_seq: u64,
    next_to_write: u64,
    /// Compressed chunks that finished before an earlier one.
    ready: BTreeMap<u64, (Vec<u8>, Crc)>,
    crc: Crc,
    wrote_header: bool,
    /// Input buffers handed back by the workers, for reuse.
    spare: Vec<Vec<u8>>,
}

impl<W: Write> ParallelGzip<W> {
    pub(super) fn new(out: W, level: u32, threads: usize) -> Self {
        let workers = (threads > 1).then(|| spawn(threads, level));
        ParallelGzip {
            out,
            level,
            chunk: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            workers,
            next_seq: 0,
            next_to_write: 0,
            ready: BTreeMap::new(),
            crc: Crc::new(),
            wrote_header: false,
            spare: Vec::new(),
        }
    }

    /// Ends the member and returns the writer.
    pub(super) fn finish(mut self) -> io::Result<W> {
        if !self.chunk.is_empty() {
            self.dispatch()?;
        }
        while self.next_to_write < self.next_seq {
            self.receive()?;
        }
        self.header()?;
        self.out.write_all(&FINAL_BLOCK)?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        self.out.flush()?;
        drop(self.workers.take());
        Ok(self.out)
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.wrote_header {
            self.out.write_all(&HEADER)?;
            self.wrote_header = true;
        }
        Ok(())
    }

    /// Hands the full (or last) chunk to a worker, or compresses it here
    /// with a single thread, and writes whatever is ready in order.
    fn dispatch(&mut self) -> io::Result<()> {
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let data = std::mem::replace(&mut self.chunk, next);
        let dict = std::mem::take(&mut self.dict);
        let start = data.len().saturating_sub(WINDOW);
        self.dict = data[start..].to_vec();
        let seq = self.next_seq;
        self.next_seq += 1;
        let Some(workers) = &self.workers else {
            let done = compress(self.level, Job { seq, dict, data });
            return self.store(done);
        };
        let worker = &workers.jobs[seq as usize % workers.jobs.len()];
        worker
            .send(Job { seq, dict, data })
            .map_err(|_| io::Error::other("a gzip compression thread stopped"))?;
        let limit = workers.jobs.len() * IN_FLIGHT_PER_THREAD;
        while (self.next_seq - self.next_to_write) as usize >= limit {
            self.receive()?;
        }
        Ok(())
    }

    /// Waits for one compressed chunk.
    fn receive(&mut self) -> io::Result<()> {
        let workers = self.workers.as_ref().expect("only threads answer later");
        let done = workers
            .done
            .recv()
            .map_err(|_| io::Error::other("a gzip compression thread stopped"))?;
        self.store(done)
    }

    fn store(&mut self, done: Done) -> io::Result<()> {
        let deflated = done.deflated?;
        let mut data = done.data;
        data.clear();
        self.spare.push(data);
        self.ready.insert(done.seq, (deflated, done.crc));
        self.header()?;
        while let Some((deflated, crc)) = self.ready.remove(&self.next_to_write) {
            self.out.write_all(&deflated)?;
            self.crc.combine(&crc);
            self.next_to_write += 1;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.dispatch()?;
        }
        Ok(n)
    }

    /// Chunks are cut by size alone, so flushing writes only what is done.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn spawn(threads: usize, level: u32) -> Workers {
    let (done_tx, done) = mpsc::channel();
    let mut jobs = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (tx, rx) = mpsc::channel::<Job>();
        let done_tx = done_tx.clone();
        handles.push(std::thread::spawn(move || {
            for job in rx {
                if done_tx.send(compress(level, job)).is_err() {
                    break;
                }
            }
        }));
        jobs.push(tx);
    }
    Workers {
        jobs,
        done,
        handles,
    }
}

fn compress(level: u32, job: Job) -> Done {
    let mut crc = Crc::new();
    crc.update(&job.data);
    // Incompressible data (media, archives, encrypted files) takes the
    // fastest level longer than text and comes out about 5% larger, coded
    // with fixed codes: a chunk whose start does not compress is stored as
    // it is (5 bytes per 64 KiB), and so is any that grew.
    let probe = &job.data[..job.data.len().min(PROBE)];
    let deflated = deflate(level, &job.dict, probe).and_then(|p| {
        if probe.len() == PROBE && p.len() * 100 > probe.len() * 98 {
            return Ok(stored(&job.data));
        }
        let deflated = deflate(level, &job.dict, &job.data)?;
        Ok(if deflated.len() > stored_len(job.data.len()) {
            stored(&job.data)
        } else {
            deflated
        })
    });
    Done {
        seq: job.seq,
        deflated,
        crc,
        data: job.data,
    }
}

/// How much of a chunk is compressed first to tell whether it compresses.
const PROBE: usize = 64 * 1024;

/// The largest stored deflate block.
const STORED_MAX: usize = 65_535;

fn stored_len(len: usize) -> usize {
    len + 5 * len.div_ceil(STORED_MAX).max(1)
}

/// `data` as non-final stored deflate blocks. They start on a byte
/// boundary, as every chunk does after the sync flush of the one before.
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored_len(data.len()));
    for piece in data.chunks(STORED_MAX) {
        let len = piece.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out
}

/// Raw deflate of `data` primed with `dict`, ended by a sync flush.
fn deflate(level: u32, dict: &[u8], data: &[u8]) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // The flush is complete once the input is used up and room was left over.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gzip(data: &[u8], threads: usize, step: usize) -> Vec<u8> {
        let mut enc = ParallelGzip::new(Vec::new(), 1, threads);
        for piece in data.chunks(step.max(1)) {
            enc.write_all(piece).unwrap();
        }
        enc.finish().unwrap()
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// Half text-like, half noise, so both matches and literals occur.
    fn sample(len: usize) -> Vec<u8> {
        let noise = noise(len);
        (0..len)
            .map(|i| {
                if (i / 4096) % 2 == 0 {
                    b"layer "[i % 6]
                } else {
                    noise[i]
                }
            })
            .collect()
    }

    #[test]
    fn one_member_decodes_to_the_input_at_every_size() {
        for len in [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data = sample(len);
            let blob = gzip(&data, 2, 65536);
            assert_eq!(gunzip(&blob), data, "{len} bytes");
            // A single-member decoder reads it all: there is exactly one member.
            let mut single = flate2::read::GzDecoder::new(&blob[..]);
            let mut out = Vec::new();
            single.read_to_end(&mut out).unwrap();
            assert_eq!(out.len(), len);
        }
    }

    #[test]
    fn incompressible_chunks_are_stored() {
        let data = noise(2 * CHUNK + 100);
        let blob = gzip(&data, 2, CHUNK);
        assert_eq!(gunzip(&blob), data);
        assert!(
            blob.len() <= stored_len(data.len()) + 64,
            "{} bytes",
            blob.len()
        );
    }

    #[test]
    fn the_output_does_not_depend_on_threads_or_write_sizes() {
        let data = sample(2 * CHUNK + 777);
        let reference = gzip(&data, 1, data.len());
        for threads in [2, 3, 8] {
            for step in [1000, CHUNK, 7 * CHUNK / 3] {
                assert!(
                    gzip(&data, threads, step) == reference,
                    "{threads} threads, {step}"
                );
            }
        }
    }

    #[test]
    fn priming_with_the_previous_chunk_keeps_repeats_small() {
        // The same noise twice, the first copy cut by a chunk boundary: half
        // of the second copy is found only through the primed window.
        let noise = noise(20_000);
        let mut data = vec![b'x'; CHUNK - 10_000];
        data.extend_from_slice(&noise);
        data.extend_from_slice(&noise);
        let blob = gzip(&data, 2, CHUNK);
        assert_eq!(gunzip(&blob), data);
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap();
        // Unprimed, the repeat would cost its 10,000 bytes again.
        assert!(
            blob.len() < single.len() + 1000,
            "{} vs {}",
            blob.len(),
            single.len()
        );
    }
}
