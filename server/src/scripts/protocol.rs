//! The frames between the server and its script workers, over the worker's standard input
//! (requests) and standard output (replies).
//!
//! Every frame is a little-endian `u32` length, then that many bytes. Inside a frame, integers
//! are little-endian; a string is a `u32` length and its UTF-8 bytes; an optional string is a
//! byte 0 (none), or a byte 1 and a string.
//!
//! - A **request**: `id: u64`, `script: [u8; 32]` (the SHA-256 of its source), `source:
//!   optional string`, then the call: a byte 0 and `data: optional string` (a mapper), or a
//!   byte 1, `count: u32` and that many optional strings (a reducer). The source is sent the
//!   first time a worker gets a script; after that, the hash alone names it.
//! - A **reply**: `id: u64`, `cpu: u64` (the worker's CPU time so far, in microseconds), a
//!   status byte, and a string for the statuses that carry one. A worker answers its requests
//!   one by one, in order. Its first frame, before any request, is a reply with id 0 and the
//!   status "ready".

use std::io::{self, Read};
use std::time::Duration;

use aetr_engine::script::ScriptError;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::OwnedCall;

/// The version of these frames. A worker started with another version refuses to run.
pub const PROTOCOL_VERSION: u32 = 1;

/// A script's name in the protocol: the SHA-256 of its source.
pub type ScriptHash = [u8; 32];

pub fn script_hash(source: &str) -> ScriptHash {
    Sha256::digest(source.as_bytes()).into()
}

/// A request, as a worker reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub script: ScriptHash,
    pub source: Option<String>,
    pub call: OwnedCall,
}

/// A reply, as the server reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub id: u64,
    /// The worker's CPU time so far.
    pub cpu: Duration,
    pub kind: ResponseKind,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ResponseKind {
    /// The worker has started, and reads requests.
    Ready,
    /// The script ran, or failed.
    Done(Result<Option<String>, ScriptError>),
    /// The request named its script by hash alone, and the worker does not have its source
    /// (it never had it, or has dropped it): send it again with the source.
    UnknownScript,
}

const STATUS_READY: u8 = 0;
const STATUS_NONE: u8 = 1;
const STATUS_TEXT: u8 = 2;
const STATUS_COMPILE: u8 = 3;
const STATUS_THROWN: u8 = 4;
const STATUS_LIMIT: u8 = 5;
const STATUS_UNKNOWN_SCRIPT: u8 = 6;

const CALL_MAP: u8 = 0;
const CALL_REDUCE: u8 = 1;

/// The bytes of a request's call: the part of a request that does not depend on the worker
/// that it goes to, so that a caller encodes it once, in its own task.
pub fn encode_call(call: &OwnedCall) -> Vec<u8> {
    let mut out = Vec::new();
    match call {
        OwnedCall::Map(data) => {
            out.push(CALL_MAP);
            put_optional_str(&mut out, data.as_deref());
        }
        OwnedCall::Reduce(results) => {
            let size: usize = results.iter().map(|r| 5 + r.as_ref().map_or(0, String::len)).sum();
            out.reserve_exact(5 + size);
            out.push(CALL_REDUCE);
            put_len(&mut out, results.len());
            for result in results {
                put_optional_str(&mut out, result.as_deref());
            }
        }
    }
    out
}

/// The most bytes that a request's call may take, so that its frame's length fits its prefix.
pub const MAX_CALL_BYTES: usize = u32::MAX as usize - 1024 * 1024;

/// The start of a request's frame (its length prefix included), to be followed by the call's
/// `call_len` bytes from [`encode_call`]. `call_len` must be at most [`MAX_CALL_BYTES`]; so must
/// the source (the engine's script size limit keeps it far below).
pub fn request_head(
    id: u64,
    script: &ScriptHash,
    source: Option<&str>,
    call_len: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 + 32 + 5 + source.map_or(0, str::len));
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(script);
    put_optional_str(&mut out, source);
    let frame_len = out.len() - 4 + call_len;
    let frame_len = u32::try_from(frame_len).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&frame_len.to_le_bytes());
    out
}

pub fn decode_request(frame: &[u8]) -> io::Result<Request> {
    let mut cursor = Cursor(frame);
    let id = cursor.u64()?;
    let script = cursor.hash()?;
    let source = cursor.optional_string()?;
    let call = match cursor.u8()? {
        CALL_MAP => OwnedCall::Map(cursor.optional_string()?),
        CALL_REDUCE => {
            let count = cursor.u32()? as usize;
            // Each optional string takes at least a byte: a count past that is a lie.
            if count > cursor.0.len() {
                return Err(invalid("a reducer's count is more than its frame holds"));
            }
            let mut results = Vec::with_capacity(count);
            for _ in 0..count {
                results.push(cursor.optional_string()?);
            }
            OwnedCall::Reduce(results)
        }
        other => return Err(invalid(&format!("unknown call kind {other}"))),
    };
    cursor.end()?;
    Ok(Request { id, script, source, call })
}

/// Appends a reply's frame (its length prefix included) to `out`.
pub fn encode_response(reply: &Response, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&reply.id.to_le_bytes());
    let cpu = u64::try_from(reply.cpu.as_micros()).unwrap_or(u64::MAX);
    out.extend_from_slice(&cpu.to_le_bytes());
    let (status, text) = match &reply.kind {
        ResponseKind::Ready => (STATUS_READY, None),
        ResponseKind::Done(Ok(None)) => (STATUS_NONE, None),
        ResponseKind::Done(Ok(Some(text))) => (STATUS_TEXT, Some(text)),
        ResponseKind::Done(Err(ScriptError::Compile(text))) => (STATUS_COMPILE, Some(text)),
        ResponseKind::Done(Err(ScriptError::Thrown(text))) => (STATUS_THROWN, Some(text)),
        ResponseKind::Done(Err(ScriptError::Limit(text))) => (STATUS_LIMIT, Some(text)),
        ResponseKind::UnknownScript => (STATUS_UNKNOWN_SCRIPT, None),
    };
    out.push(status);
    if let Some(text) = text {
        put_str(out, text);
    }
    let frame_len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&frame_len.to_le_bytes());
}

pub fn decode_response(frame: &[u8]) -> io::Result<Response> {
    let mut cursor = Cursor(frame);
    let id = cursor.u64()?;
    let cpu = Duration::from_micros(cursor.u64()?);
    let outcome = match cursor.u8()? {
        STATUS_READY => ResponseKind::Ready,
        STATUS_NONE => ResponseKind::Done(Ok(None)),
        STATUS_TEXT => ResponseKind::Done(Ok(Some(cursor.string()?))),
        STATUS_COMPILE => ResponseKind::Done(Err(ScriptError::Compile(cursor.string()?))),
        STATUS_THROWN => ResponseKind::Done(Err(ScriptError::Thrown(cursor.string()?))),
        STATUS_LIMIT => ResponseKind::Done(Err(ScriptError::Limit(cursor.string()?))),
        STATUS_UNKNOWN_SCRIPT => ResponseKind::UnknownScript,
        other => return Err(invalid(&format!("unknown reply status {other}"))),
    };
    cursor.end()?;
    Ok(Response { id, cpu, kind: outcome })
}

/// Reads one frame's bytes; `None` at the end of the stream, between frames.
pub fn read_frame(input: &mut impl Read, max_bytes: usize) -> io::Result<Option<Vec<u8>>> {
    let mut prefix = [0; 4];
    match input.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut frame = vec![0; frame_len(prefix, max_bytes)?];
    input.read_exact(&mut frame)?;
    Ok(Some(frame))
}

/// [`read_frame`], for the server's side.
pub async fn read_frame_async(
    input: &mut (impl AsyncRead + Unpin),
    max_bytes: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut prefix = [0; 4];
    match input.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut frame = vec![0; frame_len(prefix, max_bytes)?];
    input.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

fn frame_len(prefix: [u8; 4], max_bytes: usize) -> io::Result<usize> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max_bytes {
        return Err(invalid(&format!("a frame of {len} bytes, more than {max_bytes}")));
    }
    Ok(len)
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

fn put_optional_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            put_str(out, text);
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("script worker protocol: {what}"))
}

/// Reads a frame's fields in order.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(invalid("a frame ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> io::Result<u64> {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(bytes))
    }

    fn hash(&mut self) -> io::Result<ScriptHash> {
        let mut hash = [0; 32];
        hash.copy_from_slice(self.take(32)?);
        Ok(hash)
    }

    fn string(&mut self) -> io::Result<String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| invalid("a string is not UTF-8"))
    }

    fn optional_string(&mut self) -> io::Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            other => Err(invalid(&format!("an optional string's tag is {other}"))),
        }
    }

    fn end(&self) -> io::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(invalid("a frame has bytes after its last field"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_frame(request: &Request) -> Vec<u8> {
        let call = encode_call(&request.call);
        let mut frame =
            request_head(request.id, &request.script, request.source.as_deref(), call.len());
        frame.extend_from_slice(&call);
        frame
    }

    fn read_one(frame: &[u8]) -> Vec<u8> {
        let mut input = frame;
        let body = read_frame(&mut input, 1 << 20).expect("a frame").expect("not the end");
        assert!(input.is_empty(), "the prefix counts the whole frame");
        assert_eq!(read_frame(&mut input, 1 << 20).expect("the end"), None, "then the stream ends");
        body
    }

    #[test]
    fn requests_round_trip() {
        let script = script_hash("function apply(d) { return d; }");
        let requests = [
            Request {
                id: 1,
                script,
                source: Some("function apply(d) { return d; }".into()),
                call: OwnedCall::Map(Some("é\n\0".into())),
            },
            Request { id: u64::MAX, script, source: None, call: OwnedCall::Map(None) },
            Request {
                id: 7,
                script,
                source: None,
                call: OwnedCall::Reduce(vec![Some("a".into()), None, Some(String::new())]),
            },
            Request { id: 8, script, source: None, call: OwnedCall::Reduce(Vec::new()) },
        ];
        for request in requests {
            let frame = request_frame(&request);
            assert_eq!(decode_request(&read_one(&frame)).expect("a request"), request);
        }
    }

    #[test]
    fn replies_round_trip() {
        let outcomes = [
            ResponseKind::Ready,
            ResponseKind::Done(Ok(None)),
            ResponseKind::Done(Ok(Some("x".repeat(1000)))),
            ResponseKind::Done(Ok(Some(String::new()))),
            ResponseKind::Done(Err(ScriptError::Compile("c".into()))),
            ResponseKind::Done(Err(ScriptError::Thrown("t".into()))),
            ResponseKind::Done(Err(ScriptError::Limit("l".into()))),
            ResponseKind::UnknownScript,
        ];
        let mut stream = Vec::new();
        for (id, outcome) in outcomes.into_iter().enumerate() {
            let reply = Response { id: id as u64, cpu: Duration::from_micros(1234), kind: outcome };
            let mut frame = Vec::new();
            encode_response(&reply, &mut frame);
            assert_eq!(decode_response(&read_one(&frame)).expect("a reply"), reply);
            stream.extend_from_slice(&frame);
        }
        // Frames follow each other on one stream.
        let mut input = stream.as_slice();
        let mut ids = Vec::new();
        while let Some(frame) = read_frame(&mut input, 1 << 20).expect("a frame") {
            ids.push(decode_response(&frame).expect("a reply").id);
        }
        assert_eq!(ids, (0..8).collect::<Vec<u64>>());
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut frame = Vec::new();
        let reply = Response { id: 1, cpu: Duration::ZERO, kind: ResponseKind::Done(Ok(None)) };
        encode_response(&reply, &mut frame);
        let body = read_one(&frame);
        assert!(decode_response(&body[..body.len() - 1]).is_err(), "a short frame");
        let mut long = body.clone();
        long.push(0);
        assert!(decode_response(&long).is_err(), "bytes after the last field");
        let mut status = body;
        status[16] = 99;
        assert!(decode_response(&status).is_err(), "an unknown status");
        // A frame longer than the reader takes.
        let err = read_frame(&mut frame.as_slice(), 4).expect_err("too long");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A stream that ends inside a frame.
        let err = read_frame(&mut &frame[..6], 1 << 20).expect_err("cut short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // A reducer whose count is more than its frame can hold.
        let mut lie = request_frame(&Request {
            id: 1,
            script: [0; 32],
            source: None,
            call: OwnedCall::Reduce(Vec::new()),
        });
        let at = lie.len() - 4;
        lie[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_request(&read_one(&lie)).is_err());
    }
}
