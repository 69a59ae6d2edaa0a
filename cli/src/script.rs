//! The scripted commands: `send` and `listen`.

use crate::config::Saved;
use crate::error::{Error, Result};
use crate::http::{ws_url, Api};
use crate::session::{Event, Session};
use shared::{ChatSend, Content, ErrorCode, GroupId, Target};
use std::io::Write;
use std::time::Duration;

/// A fresh idempotency key.
pub fn client_msg_id() -> String {
    format!("cli-{}", uuid::Uuid::now_v7())
}

/// A group by id, or by the name of one of the user's groups.
pub async fn resolve_group(api: &Api, group: &str) -> Result<(GroupId, String)> {
    let mine = api.my_groups().await?;
    if let Ok(id) = group.parse::<GroupId>() {
        let name = mine
            .iter()
            .find(|g| g.group_id == id)
            .map(|g| g.name.clone());
        return Ok((id, name.unwrap_or_else(|| id.to_string())));
    }
    let found: Vec<_> = mine
        .into_iter()
        .filter(|g| g.name.eq_ignore_ascii_case(group))
        .collect();
    match found.as_slice() {
        [g] => Ok((g.group_id, g.name.clone())),
        [] => Err(Error::NotFound(format!(
            "you are in no group called {group:?} (give its id, or `:join` it first)"
        ))),
        _ => Err(Error::Usage(format!(
            "several of your groups are called {group:?}: give the id"
        ))),
    }
}

/// The exit-code kind of a refused chat.
pub fn refused(code: ErrorCode, message: &str) -> Error {
    let m = format!("refused: {message} ({code})");
    match code {
        ErrorCode::UnknownRecipient | ErrorCode::NotMember => Error::NotFound(m),
        _ => Error::Other(m),
    }
}

/// `send`: one chat, answered by 81 within `timeout`.
pub async fn send(
    saved: &Saved,
    to: Option<&str>,
    group: Option<&str>,
    text: &str,
    timeout: Duration,
) -> Result<()> {
    let api = Api::new(&saved.server, Some(saved.token.clone()));
    let target = match (to, group) {
        (Some(u), _) => Target::User(api.find_user(u).await?.user_id),
        (None, Some(g)) => Target::Group(resolve_group(&api, g).await?.0),
        (None, None) => return Err(Error::Usage("give --to or --group".into())),
    };
    let key = client_msg_id();
    let (session, mut events) = Session::start(ws_url(&saved.server), saved.token.clone(), false);
    session.send(ChatSend {
        from_id: None,
        to: target,
        client_msg_id: Some(key.clone()),
        content: Content::text(text),
    });
    let wait = async {
        let mut last_problem = None;
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Stored { client_msg_id, .. } if client_msg_id == key => return Ok(()),
                Event::Refused {
                    client_msg_id: Some(k),
                    code,
                    message,
                } if k == key => return Err(refused(code, &message)),
                Event::AuthFailed(m) => return Err(Error::Auth(m)),
                Event::Offline { reason, .. } => last_problem = Some(reason),
                _ => {}
            }
        }
        Err(Error::Other(
            last_problem.unwrap_or_else(|| "session ended".into()),
        ))
    };
    let result = match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(format!(
            "no answer from the relay in {}s",
            timeout.as_secs()
        ))),
    };
    session.close().await;
    result
}

/// `listen`: prints every received message (one JSON line each with
/// `json`), flushes, then acks it; ends cleanly on SIGTERM or SIGINT.
pub async fn listen(saved: &Saved, json: bool) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let api = Api::new(&saved.server, Some(saved.token.clone()));
    let mut groups = std::collections::HashMap::new();
    let (session, mut events) = Session::start(ws_url(&saved.server), saved.token.clone(), true);
    let mut out = std::io::stdout().lock();
    loop {
        let ev = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            ev = events.recv() => ev,
        };
        match ev {
            None => break,
            Some(Event::Message(m)) => {
                let line = if json {
                    serde_json::to_string(&m).map_err(|e| Error::Other(e.to_string()))?
                } else {
                    if let Target::Group(g) = m.to {
                        if !groups.contains_key(&g) {
                            if let Ok(mine) = api.my_groups().await {
                                groups.extend(mine.into_iter().map(|g| (g.group_id, g.name)));
                            }
                        }
                    }
                    crate::display::line(&m, &groups)
                };
                writeln!(out, "{line}")?;
                out.flush()?;
                session.ack(m.msg_id);
            }
            Some(Event::AuthFailed(m)) => return Err(Error::Auth(m)),
            Some(Event::Offline { reason, retry_in }) => {
                eprintln!("offline: {reason}; retrying in {retry_in:.1?}");
            }
            Some(Event::Online { username, .. }) => eprintln!("online as {username}"),
            Some(_) => {}
        }
    }
    session.close().await;
    Ok(())
}
