//! The previous index as a cursor the walk reads in lockstep with the tree.

use std::io::Read;

use crate::index::{IndexEntry, IndexError, IndexReader, IndexWriter, is_within};

/// The entries of the previous index not consumed yet; none at all when
/// there is no previous index (everything is new).
pub(super) struct Previous<P: Read> {
    reader: Option<IndexReader<P>>,
    peeked: Option<IndexEntry>,
}

impl<P: Read> Previous<P> {
    pub(super) fn new(reader: Option<IndexReader<P>>) -> Self {
        Previous {
            reader,
            peeked: None,
        }
    }

    pub(super) fn peek(&mut self) -> Result<Option<&IndexEntry>, IndexError> {
        if self.peeked.is_none()
            && let Some(reader) = &mut self.reader
        {
            self.peeked = reader.next_entry()?;
        }
        Ok(self.peeked.as_ref())
    }

    pub(super) fn take(&mut self) -> Result<Option<IndexEntry>, IndexError> {
        self.peek()?;
        Ok(self.peeked.take())
    }

    /// Consumes the entries strictly below `dir`, handing each to `keep`.
    fn drain_below(
        &mut self,
        dir: &[u8],
        mut keep: impl FnMut(IndexEntry) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        while let Some(entry) = self.peek()? {
            if entry.path.len() == dir.len() || !is_within(&entry.path, dir) {
                break;
            }
            keep(self.peeked.take().expect("peeked"))?;
        }
        Ok(())
    }

    /// Drops the entries below `dir`: what the tree holds there now hides them.
    pub(super) fn skip_below(&mut self, dir: &[u8]) -> Result<(), IndexError> {
        self.drain_below(dir, |_| Ok(()))
    }

    /// Copies the entries below `dir` into the new index unchanged: the walk
    /// did not look there, so they still describe what the image holds.
    pub(super) fn carry_below<W: std::io::Write>(
        &mut self,
        dir: &[u8],
        index: &mut Option<IndexWriter<W>>,
    ) -> Result<(), IndexError> {
        self.drain_below(dir, |entry| match index {
            Some(index) => index.push(&entry),
            None => Ok(()),
        })
    }
}
