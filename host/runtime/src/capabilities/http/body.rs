//! A response body read from a pooled connection: streamed frame by frame (reports can be
//! several MB) with the request's between-bytes timeout and a deadline for the whole body
//! (a server trickling a byte every few seconds resets the between-bytes timer forever),
//! and a hook that runs once the body has been read to its end, which is when the
//! connection may carry the next request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use wasmtime_wasi_http::Error;

/// Runs when the body has been read to its end (not when it fails or is dropped early).
pub type OnEnd = Box<dyn FnOnce() + Send>;

pub struct ResponseBody {
    incoming: Incoming,
    between_bytes: tokio::time::Interval,
    whole_body: Pin<Box<tokio::time::Sleep>>,
    on_end: Option<OnEnd>,
}

impl ResponseBody {
    pub fn new(
        incoming: Incoming,
        between_bytes_timeout: Duration,
        body_timeout: Duration,
        on_end: OnEnd,
    ) -> Self {
        // Tokio panics on a zero interval; 1 ns is effectively zero (as in wasmtime).
        let period = between_bytes_timeout.max(Duration::from_nanos(1));
        let mut between_bytes = tokio::time::interval(period);
        between_bytes.reset();
        ResponseBody {
            incoming,
            between_bytes,
            whole_body: Box::pin(tokio::time::sleep(body_timeout)),
            on_end: Some(on_end),
        }
    }

    fn ended(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.whole_body.as_mut().poll(cx).is_ready() {
            this.on_end = None;
            return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
        }
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(None) => {
                this.ended();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.between_bytes.reset();
                if this.incoming.is_end_stream() {
                    this.ended();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.on_end = None;
                let error = if error.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::from(error)
                };
                Poll::Ready(Some(Err(error)))
            }
            Poll::Pending => {
                ready!(this.between_bytes.poll_tick(cx));
                this.on_end = None;
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // An empty body (204, `Content-Length: 0`) may never be polled.
        if self.incoming.is_end_stream() {
            self.ended();
        }
    }
}
