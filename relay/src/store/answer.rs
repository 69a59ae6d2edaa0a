//! The one way a write is answered: a [`Reply`] the backend sends once the
//! write is final.
//!
//! The caller chooses what a reply does. [`answer`] pairs it with an
//! [`Answer`] future to await (HTTP handlers, tests); [`Reply::call`] runs a
//! function instead, on whichever thread the backend answers from, which is
//! how a session answers its chats (queue the 81 and fan out, see
//! `connection/answers.rs`) without waking its task once per chat. A reply
//! the backend drops without sending (it stopped, or its thread died)
//! answers [`Error::StoreClosed`]: nothing waits forever, and no 81 follows.

use crate::error::{Error, Result};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// A pair: the backend's end and the caller's end of one write's answer.
pub fn answer<T>() -> (Reply<T>, Answer<T>) {
    let (tx, rx) = oneshot::channel();
    (Reply(Some(Sink::Channel(tx))), Answer(rx))
}

enum Sink<T> {
    Channel(oneshot::Sender<Result<T>>),
    Call(Box<dyn FnOnce(Result<T>) + Send>),
}

/// The backend's end: send the result once it is final.
pub struct Reply<T>(Option<Sink<T>>);

impl<T> Reply<T> {
    /// A reply that runs `f` with the result. `f` runs on the backend's
    /// thread (or task): it must be quick and never block.
    pub fn call(f: impl FnOnce(Result<T>) + Send + 'static) -> Reply<T> {
        Reply(Some(Sink::Call(Box::new(f))))
    }

    /// Answers; a caller that stopped waiting is not an error.
    pub fn send(mut self, result: Result<T>) {
        match self.0.take() {
            Some(Sink::Channel(tx)) => {
                let _ = tx.send(result);
            }
            Some(Sink::Call(f)) => f(result),
            None => {}
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(Sink::Call(f)) = self.0.take() {
            f(Err(Error::StoreClosed));
        }
        // A dropped channel sender tells its `Answer` by itself.
    }
}

impl<T> std::fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reply")
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
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn an_answer_carries_the_result_or_says_the_store_closed() {
        let (reply, answer_) = answer::<u32>();
        reply.send(Ok(7));
        assert_eq!(answer_.await.unwrap(), 7);
        let (reply, answer_) = answer::<u32>();
        drop(reply);
        assert!(matches!(answer_.await, Err(Error::StoreClosed)));
    }

    #[test]
    fn a_called_reply_runs_once_with_the_result_or_store_closed_when_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        Reply::call(move |r: Result<u32>| s.lock().unwrap().push(r.map_err(|e| e.to_string())))
            .send(Ok(3));
        let s = seen.clone();
        drop(Reply::call(move |r: Result<u32>| {
            s.lock().unwrap().push(r.map_err(|e| e.to_string()))
        }));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], Ok(3));
        assert_eq!(seen[1], Err(Error::StoreClosed.to_string()));
    }
}
