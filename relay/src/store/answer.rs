//! The one way a write is answered: a oneshot carrying its result.
//!
//! A session queues a chat ([`crate::store::Store::submit_chat`]) in order,
//! keeps the [`Answer`], and reads on; the answer resolves once the chat is
//! durable. If the backend drops the [`Reply`] without sending (it stopped),
//! the answer is [`Error::StoreClosed`].

use crate::error::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// A pair: the backend's end and the caller's end of one write's answer.
pub fn answer<T>() -> (Reply<T>, Answer<T>) {
    let (tx, rx) = oneshot::channel();
    (Reply(tx), Answer(rx))
}

/// The backend's end: send the result once it is final.
#[derive(Debug)]
pub struct Reply<T>(oneshot::Sender<Result<T>>);

impl<T> Reply<T> {
    /// Answers; a caller that stopped waiting is not an error.
    pub fn send(self, result: Result<T>) {
        let _ = self.0.send(result);
    }
}

/// The caller's end: resolves to the write's result.
#[derive(Debug)]
pub struct Answer<T>(oneshot::Receiver<Result<T>>);

impl<T> Future for Answer<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::StoreClosed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_carries_the_result_or_says_the_store_closed() {
        let (reply, answer_) = answer::<u32>();
        reply.send(Ok(7));
        assert_eq!(answer_.await.unwrap(), 7);
        let (reply, answer_) = answer::<u32>();
        drop(reply);
        assert!(matches!(answer_.await, Err(Error::StoreClosed)));
    }
}
