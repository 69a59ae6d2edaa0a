//! The interactive session: a `rustyline` prompt in its own thread, and
//! incoming messages printed above it through rustyline's external printer
//! (so they never garble the line being typed).

use crate::command::{self, Command, HELP};
use crate::config::Saved;
use crate::display;
use crate::error::{Error, Result};
use crate::http::{ws_url, Api};
use crate::script::{client_msg_id, refused, resolve_group};
use crate::session::{Event, Session};
use rustyline::ExternalPrinter;
use shared::{ChatSend, Content, GroupId, Target, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Where output goes: above the prompt, or plain stdout without a terminal.
#[derive(Clone)]
struct Out(Option<Arc<Mutex<Box<dyn ExternalPrinter + Send>>>>);

impl Out {
    fn say(&self, msg: impl Into<String>) {
        let msg = msg.into();
        if let Some(p) = &self.0 {
            if let Ok(mut p) = p.lock() {
                if p.print(format!("{msg}\n")).is_ok() {
                    return;
                }
            }
        }
        println!("{msg}");
    }
}

/// The session's state on the UI side.
struct Ui {
    api: Api,
    session: Session,
    out: Out,
    /// The current conversation and its label (`bob`, `#team`).
    current: Option<(Target, String)>,
    groups: HashMap<GroupId, String>,
    users: HashMap<String, UserId>,
    /// Our chats waiting for their 81: key → what to print then.
    sending: HashMap<String, String>,
}

/// Runs the interactive session until `:q`, Ctrl-D or Ctrl-C.
pub async fn run(saved: Saved) -> Result<()> {
    let mut rl = rustyline::DefaultEditor::new()
        .map_err(|e| Error::Other(format!("cannot start the line editor: {e}")))?;
    let out = Out(rl
        .create_external_printer()
        .ok()
        .map(|p| Arc::new(Mutex::new(Box::new(p) as Box<dyn ExternalPrinter + Send>))));
    let prompt = Arc::new(Mutex::new("> ".to_string()));
    // One line at a time: the editor waits for `go` before reading on.
    let (line_tx, mut lines) = mpsc::channel::<Option<String>>(1);
    // The editor reads the next line only once the last one is handled, so
    // the prompt shows the conversation it switched to.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let p = prompt.clone();
    std::thread::spawn(move || {
        while go_rx.recv().is_ok() {
            let current = p.lock().map(|p| p.clone()).unwrap_or_default();
            match rl.readline(&current) {
                Ok(l) => {
                    let _ = rl.add_history_entry(l.as_str());
                    if line_tx.blocking_send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    let _ = line_tx.blocking_send(None);
                    return;
                }
            }
        }
    });
    let api = Api::new(&saved.server, Some(saved.token.clone()));
    let (session, mut events) = Session::start(ws_url(&saved.server), saved.token.clone(), true);
    let mut ui = Ui {
        api,
        session,
        out,
        current: None,
        groups: HashMap::new(),
        users: HashMap::new(),
        sending: HashMap::new(),
    };
    ui.refresh_groups().await;
    ui.out.say(format!(
        "ferrochat on {} as {} (:help for commands)",
        saved.server, saved.username
    ));
    let _ = go_tx.send(());
    let result = loop {
        tokio::select! {
            l = lines.recv() => {
                let Some(Some(line)) = l else { break Ok(()) };
                match command::parse(&line) {
                    Ok(Command::Quit) => break Ok(()),
                    Ok(c) => ui.handle(c).await,
                    Err(m) => ui.out.say(m),
                }
                if let Ok(mut p) = prompt.lock() {
                    *p = match &ui.current {
                        Some((_, label)) => format!("{label}> "),
                        None => "> ".into(),
                    };
                }
                let _ = go_tx.send(());
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break Ok(()) };
                if let Err(e) = ui.on_event(ev).await {
                    break Err(e);
                }
            }
        }
    };
    ui.session.close().await;
    result
}

impl Ui {
    async fn refresh_groups(&mut self) {
        if let Ok(mine) = self.api.my_groups().await {
            self.groups
                .extend(mine.into_iter().map(|g| (g.group_id, g.name)));
        }
    }

    async fn user(&mut self, name: &str) -> Result<UserId> {
        if let Some(id) = self.users.get(&name.to_lowercase()) {
            return Ok(*id);
        }
        let u = self.api.find_user(name).await?;
        self.users.insert(name.to_lowercase(), u.user_id);
        Ok(u.user_id)
    }

    fn send(&mut self, to: Target, label: &str, text: String) {
        let key = client_msg_id();
        self.sending.insert(key.clone(), format!("{label}: {text}"));
        self.session.send(ChatSend {
            from_id: None,
            to,
            client_msg_id: Some(key),
            content: Content::text(text),
        });
    }

    async fn handle(&mut self, c: Command) {
        if let Err(e) = self.try_handle(c).await {
            self.out.say(format!("error: {e}"));
        }
    }

    async fn try_handle(&mut self, c: Command) -> Result<()> {
        match c {
            Command::Nothing | Command::Quit => {}
            Command::Help => self.out.say(HELP),
            Command::Online => {
                let users = self.api.online().await?;
                let names: Vec<_> = users.into_iter().map(|u| u.username).collect();
                self.out.say(if names.is_empty() {
                    "no contact online".to_string()
                } else {
                    format!("online: {}", names.join(", "))
                });
            }
            Command::Groups => {
                let mine = self.api.my_groups().await?;
                if mine.is_empty() {
                    self.out.say("you are in no group (:join <group>)");
                }
                for g in mine {
                    self.out.say(format!(
                        "#{} (id {}, {} members)",
                        g.name, g.group_id, g.member_count
                    ));
                    self.groups.insert(g.group_id, g.name);
                }
            }
            Command::SwitchUser(name) => {
                let id = self.user(&name).await?;
                self.current = Some((Target::User(id), name));
            }
            Command::SwitchGroup(g) => {
                let (id, name) = resolve_group(&self.api, &g).await?;
                self.groups.insert(id, name.clone());
                self.current = Some((Target::Group(id), format!("#{name}")));
            }
            Command::Join(g) => {
                let id = match g.parse::<GroupId>() {
                    Ok(id) => id,
                    Err(_) => {
                        let found = self.api.public_groups(&g).await?;
                        let g2 = found.iter().find(|x| x.name.eq_ignore_ascii_case(&g));
                        g2.map(|x| x.group_id)
                            .ok_or_else(|| Error::NotFound(format!("no public group {g:?}")))?
                    }
                };
                let s = self.api.join(id).await?;
                self.out
                    .say(format!("joined #{} (id {})", s.name, s.group_id));
                self.groups.insert(s.group_id, s.name.clone());
                self.current = Some((Target::Group(s.group_id), format!("#{}", s.name)));
            }
            Command::History(n) => {
                let Some((to, label)) = self.current.clone() else {
                    return Err(Error::Usage(
                        "no conversation: :u <user> or :g <group>".into(),
                    ));
                };
                let h = self.api.history(to, n).await?;
                self.out
                    .say(format!("-- last {} of {label} --", h.messages.len()));
                for m in &h.messages {
                    self.out.say(display::line(m, &self.groups));
                }
            }
            Command::Private { to, text } => {
                let id = self.user(&to).await?;
                self.send(Target::User(id), &to, text);
            }
            Command::Say(text) => {
                let Some((to, label)) = self.current.clone() else {
                    return Err(Error::Usage(
                        "no conversation: :u <user>, :g <group>, or user;;text".into(),
                    ));
                };
                self.send(to, &label, text);
            }
        }
        Ok(())
    }

    async fn on_event(&mut self, ev: Event) -> Result<()> {
        match ev {
            Event::Message(m) => {
                if let Target::Group(g) = m.to {
                    if !self.groups.contains_key(&g) {
                        self.refresh_groups().await;
                    }
                }
                self.out.say(display::line(&m, &self.groups));
                self.session.ack(m.msg_id);
            }
            Event::Stored { client_msg_id, .. } => {
                if let Some(what) = self.sending.remove(&client_msg_id) {
                    let now = chrono::Local::now().timestamp_millis();
                    self.out
                        .say(format!("[{}] you -> {what}", display::local_time(now)));
                }
            }
            Event::Refused {
                client_msg_id,
                code,
                message,
            } => {
                if let Some(k) = client_msg_id {
                    self.sending.remove(&k);
                }
                self.out.say(format!("error: {}", refused(code, &message)));
            }
            Event::Presence { username, online } => {
                let state = if online { "online" } else { "offline" };
                self.out.say(format!("* {username} is {state}"));
            }
            Event::Group(g) => {
                self.refresh_groups().await;
                let name = g.name.unwrap_or_else(|| g.group_id.to_string());
                let who = g.username.map(|u| format!("{u} ")).unwrap_or_default();
                self.out
                    .say(format!("* #{name}: {who}{:?}", g.kind).to_lowercase());
            }
            Event::Online { username, .. } => self.out.say(format!("* connected as {username}")),
            Event::Offline { reason, retry_in } => self.out.say(format!(
                "* disconnected ({reason}); reconnecting in {:.1}s",
                retry_in.as_secs_f64()
            )),
            Event::AuthFailed(m) => return Err(Error::Auth(m)),
        }
        Ok(())
    }
}
