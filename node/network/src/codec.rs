//! Framing of block-sync requests and responses: a u32 big-endian length prefix, then that many
//! bytes. The length is checked against the limit before anything is allocated for the body, and
//! the body buffer grows only as bytes actually arrive, so a peer that announces 64 MiB and sends
//! nothing costs us nothing.

use std::{fmt, io};

use libp2p::{
    futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    request_response, StreamProtocol,
};

/// Which side of the exchange a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    Request,
    Response,
}

/// A frame over its limit, carried inside the `io::Error` that request-response passes back so
/// that the service can turn it into a precise [`crate::NetworkError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameTooLarge {
    pub(crate) kind: FrameKind,
    pub(crate) size: u64,
    pub(crate) limit: usize,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sync {:?} of {} bytes exceeds the {}-byte limit", self.kind, self.size, self.limit)
    }
}

impl std::error::Error for FrameTooLarge {}

impl FrameTooLarge {
    /// Finds a `FrameTooLarge` inside an I/O error from the codec.
    pub(crate) fn find(error: &io::Error) -> Option<Self> {
        error.get_ref().and_then(|inner| inner.downcast_ref::<Self>()).copied()
    }
}

/// Initial body buffer; it grows as data arrives, up to the announced (and checked) length.
const INITIAL_BUFFER: usize = 64 * 1024;

/// The request-response codec for `/cdrchain/<genesis>/sync/1`: opaque bytes both ways.
#[derive(Debug, Clone)]
pub(crate) struct SyncCodec {
    pub(crate) max_request: usize,
    pub(crate) max_response: usize,
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, FrameKind::Request, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, FrameKind::Response, self.max_response).await
    }

    async fn write_request<T>(&mut self, _: &Self::Protocol, io: &mut T, request: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, FrameKind::Request, self.max_request, &request).await
    }

    async fn write_response<T>(&mut self, _: &Self::Protocol, io: &mut T, response: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, FrameKind::Response, self.max_response, &response).await
    }
}

pub(crate) async fn read_frame<T>(io: &mut T, kind: FrameKind, limit: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let size = u32::from_be_bytes(prefix);
    let too_large = || FrameTooLarge { kind, size: u64::from(size), limit };
    let size = usize::try_from(size).map_err(|_| invalid_data(too_large()))?;
    if size > limit {
        return Err(invalid_data(too_large()));
    }
    let mut body = Vec::with_capacity(size.min(INITIAL_BUFFER));
    // `take` stops at the announced size; a peer that sends less hits end-of-stream.
    let read = io.take(size as u64).read_to_end(&mut body).await?;
    if read != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("sync {kind:?} ended after {read} of {size} announced bytes"),
        ));
    }
    Ok(body)
}

pub(crate) async fn write_frame<T>(io: &mut T, kind: FrameKind, limit: usize, body: &[u8]) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let too_large = || FrameTooLarge { kind, size: body.len() as u64, limit };
    if body.len() > limit {
        return Err(invalid_data(too_large()));
    }
    let size = u32::try_from(body.len()).map_err(|_| invalid_data(too_large()))?;
    io.write_all(&size.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.flush().await
}

fn invalid_data(error: FrameTooLarge) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

#[cfg(test)]
mod tests {
    use libp2p::futures::{executor::block_on, io::Cursor};

    use super::*;

    fn check_round_trip(body: &[u8], limit: usize) {
        let mut wire = Cursor::new(Vec::new());
        block_on(write_frame(&mut wire, FrameKind::Request, limit, body)).unwrap();
        let wire = wire.into_inner();
        assert_eq!(wire[..4], (body.len() as u32).to_be_bytes());
        let read = block_on(read_frame(&mut Cursor::new(wire), FrameKind::Request, limit));
        assert_eq!(read.unwrap(), body);
    }

    #[test]
    fn frames_round_trip() {
        check_round_trip(b"", 0);
        check_round_trip(b"", 10);
        check_round_trip(b"height 7", 8);
        check_round_trip(&vec![0xa5; 200_000], 200_000);
    }

    #[test]
    fn an_announced_size_over_the_limit_is_refused_before_reading_the_body() {
        // Announce u32::MAX and send nothing more: must fail on the prefix alone.
        let wire = u32::MAX.to_be_bytes().to_vec();
        let error = block_on(read_frame(&mut Cursor::new(wire), FrameKind::Response, 1024)).unwrap_err();
        assert_eq!(
            FrameTooLarge::find(&error),
            Some(FrameTooLarge { kind: FrameKind::Response, size: u64::from(u32::MAX), limit: 1024 })
        );
    }

    #[test]
    fn a_short_body_is_an_unexpected_end() {
        let mut wire = 10u32.to_be_bytes().to_vec();
        wire.extend_from_slice(b"abc");
        let error = block_on(read_frame(&mut Cursor::new(wire), FrameKind::Request, 100)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(FrameTooLarge::find(&error), None);
    }

    #[test]
    fn writing_over_the_limit_is_refused() {
        let mut wire = Cursor::new(Vec::new());
        let error = block_on(write_frame(&mut wire, FrameKind::Response, 3, b"four")).unwrap_err();
        assert!(FrameTooLarge::find(&error).is_some());
        assert!(wire.into_inner().is_empty());
    }
}
