//! The bytes of a CRM export, as UTF-8 for the csv parser: which encoding the file is in
//! (a byte order mark, else `[clients] encoding`, else a sample of its start, or when that
//! is plain ASCII the first byte beyond ASCII further on), decoded as
//! it streams, with the counts the reader needs (did the last record end with the file?
//! how long is the record being read?). UTF-8 files pass through undecoded. It must not
//! parse CSV or judge rows.

use std::io::{self, Read};

use encoding_rs::{Decoder, Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// A record may span several lines (line breaks inside quotes), but past this many bytes a
/// closing quote is surely missing; reading stops instead of buffering the rest of the file.
pub(super) const MAX_RECORD_BYTES: u64 = 1 << 20;
/// How much of the start of a file is looked at to tell its encoding and delimiter: the
/// title lines and header of any export, and enough rows to meet an accented name.
const SAMPLE_BYTES: usize = 64 * 1024;
/// Raw bytes decoded at a time in a file that is not UTF-8.
const RAW_CHUNK_BYTES: usize = 64 * 1024;

/// How the file's encoding was chosen, for the import's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chosen {
    pub encoding: &'static Encoding,
    /// True when detected; false when `[clients] encoding` said so.
    pub detected: bool,
    /// The file's byte order mark named another encoding than `[clients] encoding`: the
    /// mark wins (it cannot be wrong), and the summary says so.
    pub overridden: Option<&'static Encoding>,
    /// `[clients] encoding` names a legacy encoding, but the start of the file is UTF-8
    /// text with accented letters: read that way, every one of them would be garbled.
    pub set_but_utf8: bool,
}

/// The input as UTF-8, counted: what the csv reader's line counter cannot tell (did the
/// last record end with the file?), and a cap on how far one record may run.
pub(super) struct Source<R> {
    inner: R,
    /// Text read ahead and not yet handed over: the sample at first, then (in a file that
    /// is not UTF-8) each decoded chunk.
    ahead: Vec<u8>,
    ahead_from: usize,
    /// `None` for UTF-8: the bytes are handed over as they are read.
    decoder: Option<Decoder>,
    /// Raw bytes waiting for the decoder: `raw[raw_from..raw_end]`.
    raw: Vec<u8>,
    raw_from: usize,
    raw_end: usize,
    inner_done: bool,
    decoded_all: bool,
    /// A read that failed after the sample had bytes: told when the reader gets there,
    /// so the rows before it are read.
    deferred: Option<io::Error>,
    /// Bytes handed to the csv reader so far.
    pub delivered: u64,
    /// The last byte handed over: whether the file ends with a line break.
    pub last_byte: Option<u8>,
    pub at_end: bool,
    /// Where the record being read starts (the csv reader's byte position after the last one).
    pub record_start: u64,
    pub record_too_long: bool,
    /// A file detected as UTF-8 whose text so far is all ASCII: the first byte beyond
    /// ASCII decides between UTF-8 and Windows-1252 (until then both read the same).
    ascii_so_far: bool,
    /// That byte was not UTF-8: the file is read as Windows-1252 from there on.
    pub switched_to_windows_1252: bool,
}

impl<R: Read> Source<R> {
    /// Reads the start of `inner` and chooses its encoding: `forced` unless the file starts
    /// with a byte order mark, else the mark's, else UTF-8 unless the sample holds bytes
    /// that are not UTF-8 and no UTF-8 character at all (then Windows-1252, which reads
    /// every byte, and is what Excel and older CRMs write in Western Europe and America).
    /// A sample all ASCII leaves the choice to the first byte beyond it, further on.
    pub(super) fn open(
        mut inner: R,
        forced: Option<&'static Encoding>,
    ) -> io::Result<(Source<R>, Chosen)> {
        let mut sample = vec![0; SAMPLE_BYTES];
        let mut filled = 0;
        let mut inner_done = false;
        let mut deferred = None;
        while filled < sample.len() {
            match read_retrying(&mut inner, &mut sample[filled..]) {
                Ok(0) => {
                    inner_done = true;
                    break;
                }
                Ok(read) => filled += read,
                Err(error) if filled > 0 => {
                    deferred = Some(error);
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        sample.truncate(filled);
        let bom = Encoding::for_bom(&sample);
        let utf16 = |encoding| encoding == UTF_16LE || encoding == UTF_16BE;
        let chosen = match (forced, bom) {
            // `encoding = "utf-16"` is either byte order: the mark tells which.
            (Some(set), Some((marked, _))) if utf16(set) && utf16(marked) => Chosen {
                encoding: marked,
                detected: false,
                overridden: None,
                set_but_utf8: false,
            },
            (Some(set), Some((marked, _))) if set != marked => Chosen {
                encoding: marked,
                detected: true,
                overridden: Some(set),
                set_but_utf8: false,
            },
            (Some(set), _) => Chosen {
                encoding: set,
                detected: false,
                overridden: None,
                set_but_utf8: bom.is_none()
                    && set != UTF_8
                    && !utf16(set)
                    && is_utf8_text(&sample, inner_done),
            },
            (None, Some((marked, _))) => Chosen {
                encoding: marked,
                detected: true,
                overridden: None,
                set_but_utf8: false,
            },
            (None, None) => Chosen {
                encoding: if is_windows_1252(&sample, inner_done) {
                    WINDOWS_1252
                } else {
                    UTF_8
                },
                detected: true,
                overridden: None,
                set_but_utf8: false,
            },
        };
        let bom_len = match bom {
            Some((marked, len)) if marked == chosen.encoding => len,
            _ => 0,
        };
        let mut source = Source {
            inner,
            ahead: Vec::new(),
            ahead_from: 0,
            decoder: None,
            raw: Vec::new(),
            raw_from: 0,
            raw_end: 0,
            inner_done,
            decoded_all: false,
            deferred,
            delivered: 0,
            last_byte: None,
            at_end: false,
            record_start: 0,
            record_too_long: false,
            ascii_so_far: false,
            switched_to_windows_1252: false,
        };
        if chosen.encoding == UTF_8 {
            source.ascii_so_far =
                chosen.detected && bom.is_none() && !inner_done && sample.is_ascii();
            source.ahead = sample;
            source.ahead_from = bom_len;
        } else {
            source.decoder = Some(chosen.encoding.new_decoder_without_bom_handling());
            source.raw_end = sample.len();
            source.raw = sample;
            source.raw_from = bom_len;
            source.decode_more()?;
        }
        Ok((source, chosen))
    }

    /// The text read ahead: at the start, the decoded sample, to find the delimiter in.
    /// The second value says whether it is the whole file.
    pub(super) fn sample(&self) -> (&[u8], bool) {
        let ahead = self.ahead.get(self.ahead_from..).unwrap_or_default();
        let whole = self.inner_done && self.raw_from >= self.raw_end;
        (ahead, whole)
    }

    /// Decodes raw bytes until there is text ahead or the input is done.
    fn decode_more(&mut self) -> io::Result<()> {
        while self.ahead_from >= self.ahead.len() && !self.decoded_all {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(());
            };
            if self.raw_from >= self.raw_end && !self.inner_done {
                if self.raw.len() < RAW_CHUNK_BYTES {
                    self.raw.resize(RAW_CHUNK_BYTES, 0);
                }
                let read = match self.deferred.take() {
                    Some(error) => return Err(error),
                    None => read_retrying(&mut self.inner, &mut self.raw)?,
                };
                self.raw_from = 0;
                self.raw_end = read;
                self.inner_done = read == 0;
            }
            let src = self
                .raw
                .get(self.raw_from..self.raw_end)
                .unwrap_or_default();
            let last = self.inner_done;
            // UTF-16 and single-byte encodings: at most 3 bytes of UTF-8 per input byte.
            let room = decoder
                .max_utf8_buffer_length(src.len())
                .unwrap_or(src.len() * 3 + 16);
            self.ahead.clear();
            self.ahead.resize(room, 0);
            self.ahead_from = 0;
            // Malformed UTF-16 (a lone surrogate) becomes U+FFFD: nothing else can fail.
            let (_, read, written, _) = decoder.decode_to_utf8(src, &mut self.ahead, last);
            self.raw_from += read;
            self.ahead.truncate(written);
            if last && self.raw_from >= self.raw_end {
                self.decoded_all = true;
            }
        }
        Ok(())
    }

    fn read_text(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ahead_from >= self.ahead.len() && self.decoder.is_none() {
            // UTF-8 past the sample: straight from the input, no copy and no decoding.
            if let Some(error) = self.deferred.take() {
                return Err(error);
            }
            if self.inner_done {
                return Ok(0);
            }
            let read = read_retrying(&mut self.inner, buf)?;
            // `is_ascii` reads a word at a time: the scan costs little even in a large file.
            if !self.ascii_so_far || buf[..read].is_ascii() {
                return Ok(read);
            }
            let Some(at) = buf[..read].iter().position(|byte| !byte.is_ascii()) else {
                return Ok(read);
            };
            self.ascii_so_far = false;
            self.first_beyond_ascii(buf[at..read].to_vec());
            if at > 0 {
                return Ok(at);
            }
        }
        if self.ahead_from >= self.ahead.len() {
            self.decode_more()?;
        }
        let ahead = self.ahead.get(self.ahead_from..).unwrap_or_default();
        let count = ahead.len().min(buf.len());
        buf[..count].copy_from_slice(&ahead[..count]);
        self.ahead_from += count;
        Ok(count)
    }

    /// `rest` starts with the first byte beyond ASCII of a file read as UTF-8: a UTF-8
    /// character keeps it UTF-8; anything else is Windows-1252 (Excel's `Jürgen`), which
    /// reads everything before it the same.
    fn first_beyond_ascii(&mut self, mut rest: Vec<u8>) {
        // A UTF-8 character is at most 4 bytes: read until they are all here.
        while rest.len() < 4 && !self.inner_done && self.deferred.is_none() {
            let mut more = [0; 4];
            let wanted = 4 - rest.len();
            match read_retrying(&mut self.inner, &mut more[..wanted]) {
                Ok(0) => self.inner_done = true,
                Ok(read) => rest.extend_from_slice(&more[..read]),
                Err(error) => self.deferred = Some(error),
            }
        }
        let window = rest.get(..4).unwrap_or(&rest);
        let utf8 = window
            .utf8_chunks()
            .next()
            .is_some_and(|chunk| !chunk.valid().is_empty());
        if utf8 {
            self.ahead = rest;
            self.ahead_from = 0;
        } else {
            self.switched_to_windows_1252 = true;
            self.decoder = Some(WINDOWS_1252.new_decoder_without_bom_handling());
            self.raw_end = rest.len();
            self.raw = rest;
            self.raw_from = 0;
        }
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.delivered.saturating_sub(self.record_start) > MAX_RECORD_BYTES {
            self.record_too_long = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record too long",
            ));
        }
        let read = self.read_text(buf)?;
        match buf.get(..read).and_then(<[u8]>::last) {
            Some(&byte) => {
                self.last_byte = Some(byte);
                self.delivered += read as u64;
            }
            None => self.at_end = read == 0 && !buf.is_empty(),
        }
        Ok(read)
    }
}

fn read_retrying(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match inner.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Whether a sample without a byte order mark is Windows-1252 rather than UTF-8: its
/// bytes that are not UTF-8 outnumber its UTF-8 characters beyond ASCII more than twice.
/// A stray byte or two in a UTF-8 file (an address pasted from elsewhere) leave it UTF-8:
/// those rows are held with an error that names the encoding to set, never garbled. In
/// Windows-1252 text a pair of letters is now and then valid UTF-8 too (`Ñ€` reads as
/// `р`): among many accents that are not, the file is still Windows-1252.
pub(super) fn is_windows_1252(sample: &[u8], whole_file: bool) -> bool {
    let (utf8, invalid) = beyond_ascii(sample, whole_file);
    invalid > 2 * utf8
}

/// Whether a sample is UTF-8 text with characters beyond ASCII (`Zoë`), and nothing
/// that is not UTF-8.
fn is_utf8_text(sample: &[u8], whole_file: bool) -> bool {
    let (utf8, invalid) = beyond_ascii(sample, whole_file);
    utf8 > 0 && invalid == 0
}

/// In the whole lines of a sample, the UTF-8 characters beyond ASCII and the runs of
/// bytes that are not UTF-8.
fn beyond_ascii(sample: &[u8], whole_file: bool) -> (usize, usize) {
    // Only whole lines: a character cut at the sample's end is not a wrong one.
    let complete = if whole_file {
        sample
    } else {
        match sample.iter().rposition(|&byte| byte == b'\n') {
            Some(end) => &sample[..end],
            None => sample,
        }
    };
    let (mut utf8, mut invalid) = (0_usize, 0_usize);
    for chunk in complete.utf8_chunks() {
        utf8 += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        invalid += usize::from(!chunk.invalid().is_empty());
    }
    (utf8, invalid)
}
