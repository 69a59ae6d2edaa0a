//! What a user does in ferrochat, in its own words: sign up, log in, open a
//! conversation, send, wait for a message or a receipt, create and join
//! groups. Also the app's selectors and how a message reads in the page
//! (`[data-testid=message]`). Built on the low-level helpers of `browser`.

use super::browser::{tid, Browser};
use super::env::Env;
use super::{err, wait_until, WAIT};
use fantoccini::Locator;
use serde::Deserialize;
use std::time::Duration;

/// The password of every test account (valid: 8+ characters).
pub const PASSWORD: &str = "correct-horse-battery";

/// The sidebar entry of the conversation with `peer`.
pub fn conv_item(peer: &str) -> String {
    format!("[data-testid=\"conv-item\"][data-user=\"{peer}\"]")
}

/// The sidebar entry of the group named `name`.
pub fn conv_group(name: &str) -> String {
    format!("[data-testid=\"conv-item\"][data-group=\"{name}\"]")
}

/// A member in the open group's member panel.
pub fn member(user: &str) -> String {
    format!("[data-testid=\"group-members\"] [data-testid=\"member\"][data-user=\"{user}\"]")
}

/// One message as the page shows it (`[data-testid=message]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Msg {
    /// `data-mine == "true"`.
    pub mine: bool,
    /// `data-state`.
    pub state: String,
    /// `.body` text.
    pub body: String,
    /// `.sender` text.
    pub sender: String,
    /// `data-msg-id`, once the relay assigned one.
    pub msg_id: Option<String>,
    /// `data-read-by` (ours in a group): how many others have read it.
    pub read_by: Option<u32>,
}

const MESSAGES_JS: &str = r#"
return Array.from(document.querySelectorAll('[data-testid="message"]')).map(e => ({
    mine: e.getAttribute('data-mine') === 'true',
    state: e.getAttribute('data-state') || '',
    body: (e.querySelector('.body') || {}).textContent || '',
    sender: (e.querySelector('.sender') || {}).textContent || '',
    msg_id: e.getAttribute('data-msg-id'),
    read_by: e.hasAttribute('data-read-by') ? Number(e.getAttribute('data-read-by')) : null,
}));
"#;

impl Env {
    /// A new user in a new browser session, signed up and connected: the
    /// start of most scenarios. Returns the username and the browser.
    pub async fn signed_up(&self, role: &str) -> (String, Browser) {
        self.signed_up_with(role, &[]).await
    }

    /// [`Env::signed_up`] in a browser with extra Chromium flags.
    pub async fn signed_up_with(&self, role: &str, flags: &[String]) -> (String, Browser) {
        let name = self.username(role);
        let browser = self.browser_with(role, flags).await;
        browser.open().await;
        browser.register(&name).await;
        browser.wait_connected(WAIT).await;
        (name, browser)
    }

    /// Users online per relay of the cluster (its gauges).
    pub async fn online_per_node(&self) -> Vec<i64> {
        let mut online = Vec::new();
        for i in 0..self.nodes().len() {
            online.push(self.node_metric(i, "ferrochat_users_online").await);
        }
        online
    }

    /// The relay of the one user signed in so far.
    pub async fn node_of_only_user(&self) -> usize {
        wait_until(
            "the first user's socket is on a relay",
            WAIT,
            || async move {
                let p = self.online_per_node().await;
                if p.iter().sum::<i64>() == 1 {
                    Ok(p.iter().position(|n| *n == 1).unwrap())
                } else {
                    Err(format!("{p:?}"))
                }
            },
        )
        .await
    }

    /// Waits until `second`'s socket is on another relay than `first_node`
    /// (nginx balances by open connections; a reload moves it if not).
    pub async fn until_apart(&self, first_node: usize, second: &Browser) {
        wait_until(
            "the second user's socket is on the other relay",
            Duration::from_secs(60),
            || async move {
                let p = self.online_per_node().await;
                if p[first_node] == 1 && p.iter().sum::<i64>() == 2 {
                    return Ok(());
                }
                if p.iter().sum::<i64>() == 2 {
                    second.reload().await;
                    second.wait_connected(WAIT).await;
                }
                Err(format!("users online per relay: {p:?}"))
            },
        )
        .await
    }
}

impl Browser {
    /// Every message of the open conversation, in page order.
    pub async fn messages(&self) -> Result<Vec<Msg>, String> {
        let v = self.js(MESSAGES_JS, vec![]).await?;
        serde_json::from_value(v).map_err(err)
    }

    /// Waits for the sign-in form of a signed-out browser.
    pub async fn wait_sign_in_form(&self) {
        self.wait_for("#username").await;
        self.wait_for("#password").await;
        assert!(
            !self.exists(&tid("me")).await.unwrap(),
            "{}: signed out, yet [data-testid=me] is shown",
            self.label
        );
    }

    /// Fills the sign-in form and presses `button` (`login` or `register`).
    pub async fn submit_credentials(&self, user: &str, password: &str, button: &str) {
        self.wait_sign_in_form().await;
        self.fill("#username", user).await;
        self.fill("#password", password).await;
        self.click(&tid(button)).await;
    }

    /// Signs up through the form; waits until signed in as `user`.
    pub async fn register(&self, user: &str) {
        self.submit_credentials(user, PASSWORD, "register").await;
        self.expect_signed_in(user).await;
    }

    /// Logs in through the form; waits until signed in as `user`.
    pub async fn login(&self, user: &str) {
        self.submit_credentials(user, PASSWORD, "login").await;
        self.expect_signed_in(user).await;
    }

    /// The chat UI shows `user` as the current user.
    pub async fn expect_signed_in(&self, user: &str) {
        self.wait_text(&tid("me"), WAIT, &format!("== {user:?}"), |t| t == user)
            .await;
    }

    /// Waits until the socket is logged in: no connection banner.
    pub async fn wait_connected(&self, timeout: Duration) {
        self.wait_gone(&tid("conn-banner"), timeout).await;
    }

    /// Waits until the banner says the connection is being re-established.
    pub async fn wait_reconnecting(&self) -> String {
        self.wait_text(
            &tid("conn-banner"),
            WAIT,
            "containing \"reconnecting\"",
            |t| t.contains("reconnecting"),
        )
        .await
    }

    /// Opens the conversation with `peer` through the user search.
    pub async fn open_chat_via_search(&self, peer: &str) {
        self.fill(&tid("user-search"), peer).await;
        let result = format!("[data-testid=\"search-result\"][data-user=\"{peer}\"]");
        self.click(&result).await;
        self.wait_for(&tid("composer")).await;
    }

    /// Types `text` in the composer and presses Send; waits until the
    /// message is in the list as ours. Returns it.
    pub async fn send(&self, text: &str) -> Msg {
        self.fill(&tid("composer"), text).await;
        self.click(&tid("send")).await;
        // The composer empties itself once the message is queued.
        let what = format!("{}: the composer to empty after sending", self.label);
        wait_until(&what, WAIT, || async move {
            let e = self
                .client
                .find(Locator::Css(&tid("composer")))
                .await
                .map_err(err)?;
            let v = e.prop("value").await.map_err(err)?.unwrap_or_default();
            if v.is_empty() {
                Ok(())
            } else {
                Err(format!("composer holds {v:?}"))
            }
        })
        .await;
        self.wait_message(text, true, None, WAIT).await
    }

    /// Waits until exactly one message with `body` (ours or theirs as
    /// `mine` says, in `state` if given) is in the open conversation.
    pub async fn wait_message(
        &self,
        body: &str,
        mine: bool,
        state: Option<&str>,
        timeout: Duration,
    ) -> Msg {
        let what = format!(
            "{}: a message {body:?} with data-mine={mine}{}",
            self.label,
            state
                .map(|s| format!(" data-state={s}"))
                .unwrap_or_default()
        );
        wait_until(&what, timeout, || async move {
            let all = self.messages().await?;
            let same: Vec<&Msg> = all.iter().filter(|m| m.body == body).collect();
            match same.as_slice() {
                [m] if m.mine == mine && state.is_none_or(|s| m.state == s) => Ok((*m).clone()),
                [_, _, ..] => panic!(
                    "{}: message {body:?} is shown {} times: {all:#?}",
                    self.label,
                    same.len()
                ),
                _ => Err(format!("messages: {all:?}")),
            }
        })
        .await
    }

    /// Waits until `body` from `from` is shown (theirs, `received`).
    pub async fn wait_received(&self, body: &str, from: &str) -> Msg {
        let m = self.wait_message(body, false, Some("received"), WAIT).await;
        assert_eq!(m.sender, from, "{}: sender of {body:?}", self.label);
        m
    }

    /// Waits until our message `body` reaches `state`.
    pub async fn wait_state(&self, body: &str, state: &str) -> Msg {
        self.wait_message(body, true, Some(state), WAIT).await
    }

    /// Sends `text` to `peer`, who has the conversation open: waits until
    /// `peer` shows it as received from `me` (this browser's user), then
    /// until it is "read" here.
    pub async fn send_read_by(&self, me: &str, peer: &Browser, text: &str) {
        self.send(text).await;
        peer.wait_received(text, me).await;
        self.wait_state(text, "read").await;
    }

    /// Waits until the conversation with `peer` shows `n` unread.
    pub async fn wait_unread(&self, peer: &str, n: u32) {
        self.wait_unread_badge(&conv_item(peer), n).await;
    }

    /// Waits until the group `name` shows `n` unread.
    pub async fn wait_group_unread(&self, name: &str, n: u32) {
        self.wait_unread_badge(&conv_group(name), n).await;
    }

    /// Waits until the sidebar entry `entry` has an unread badge of `n`.
    async fn wait_unread_badge(&self, entry: &str, n: u32) {
        let css = format!("{entry} {}", tid("unread"));
        self.wait_text(&css, WAIT, &format!("== \"{n}\""), |t| {
            t.trim() == n.to_string()
        })
        .await;
    }

    /// Waits until our group message `body` says it was read by `n`
    /// others (`data-read-by`), in `state`.
    pub async fn wait_read_by(&self, body: &str, n: u32, state: &str) -> Msg {
        let what = format!("{}: {body:?} read by {n}, data-state={state}", self.label);
        wait_until(&what, WAIT, || async move {
            let all = self.messages().await?;
            match all.iter().find(|m| m.body == body) {
                Some(m) if m.mine && m.read_by == Some(n) && m.state == state => Ok(m.clone()),
                Some(m) => Err(format!("{m:?}")),
                None => Err(format!("not shown; messages: {all:?}")),
            }
        })
        .await
    }

    /// Creates a group through the "New group" form; waits until its
    /// conversation is open, with the member panel.
    pub async fn create_group(&self, name: &str, public: bool) {
        self.click(&tid("new-group")).await;
        self.fill("#group-name", name).await;
        if public {
            self.click(&tid("group-public")).await;
        }
        self.click(&tid("create-group")).await;
        self.wait_for(&conv_group(name)).await;
        self.wait_for(&tid("composer")).await;
        self.wait_for(&tid("group-members")).await;
    }

    /// Adds `user` to the open group from the member panel; waits until
    /// they are listed.
    pub async fn add_member(&self, user: &str) {
        self.fill("#add-member", user).await;
        self.click(&tid("add-member-submit")).await;
        self.wait_for(&member(user)).await;
    }

    /// Finds the public group `name` by typing `query` in the group search,
    /// joins it and opens it.
    pub async fn join_public_group(&self, query: &str, name: &str) {
        self.click(&tid("find-groups")).await;
        self.fill("#group-search", query).await;
        let result = format!("[data-testid=\"group-result\"][data-group=\"{name}\"]");
        self.click(&format!("{result} {}", tid("join-group"))).await;
        self.open_group(name).await;
    }

    /// Opens the group `name` from the sidebar.
    pub async fn open_group(&self, name: &str) {
        self.click(&conv_group(name)).await;
        self.wait_text(
            ".conv-head .peer-name",
            WAIT,
            &format!("== {name:?}"),
            |t| t == name,
        )
        .await;
        self.wait_for(&tid("composer")).await;
    }
}
