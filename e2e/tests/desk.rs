//! The support desk in real browsers: a visitor on a plain page of another
//! origin that embeds `widget.js`, and an agent in the SPA's Desk view.
//! The visitor writes while the agent is away and waits in the queue; the
//! agent comes back and gets the conversation; they chat; the visitor
//! reloads the page and carries on. Screenshots of the widget and of the
//! Desk view go to `e2e-artifacts/desk-*.png`.

mod common;

use common::{run, tid, wait_until, Browser, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A plain "shop" page embedding the widget, served from its own origin
/// (another port: the widget frames the relay's `/support`). Returns its
/// URL; the server lives as long as the test's runtime.
async fn host_page(relay: &str) -> String {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Example shop</title></head>\
         <body style=\"font-family:sans-serif\"><h1>Example shop</h1><p>Our best products.</p>\
         <script src=\"{relay}widget.js\" async></script></body></html>"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    format!("http://{addr}/shop/cart")
}

/// Opens the widget (bubble, then its iframe) and switches into it.
async fn open_widget(v: &Browser) {
    v.click("#ferrochat-bubble").await;
    let frame = v.wait_for("#ferrochat-frame").await;
    frame.enter_frame().await.expect("into the widget's frame");
}

fn status(state: &str) -> String {
    format!("{}[data-state=\"{state}\"]", tid("desk-status"))
}

async fn wait_text_in(b: &Browser, css: &str, needle: &str) {
    let what = format!("{}: {css} to say {needle:?}", b.label);
    wait_until(&what, WAIT, || async move {
        match b.text(css).await? {
            Some(t) if t.contains(needle) => Ok(()),
            t => Err(format!("it says {t:?}")),
        }
    })
    .await
}

#[tokio::test]
async fn a_visitor_in_the_widget_is_queued_then_served_and_keeps_the_chat_across_a_reload() {
    run("desk", |env| async move {
        // The agent: a registered account made an agent; the app asks
        // `/api/me` at load, so it is reloaded.
        let (agent, a) = env.signed_up("agent").await;
        env.grant_agent(&agent).await;
        a.reload().await;
        a.click(&tid("desk-nav")).await;
        a.wait_for(&tid("desk")).await;
        // Away, so that the visitor waits in the queue.
        a.click(&tid("desk-available")).await;
        wait_text_in(&a, ".desk-toggle", "Away").await;

        let shop = host_page(&env.url()).await;
        let v = env.browser("visitor").await;
        v.client.goto(&shop).await.expect("the shop page loads");
        v.wait_for("#ferrochat-bubble").await;
        v.save_screenshot("desk-widget-closed.png").await;
        open_widget(&v).await;
        v.fill("#visitor-name", "Vera").await;
        v.click(&tid("visitor-start")).await;
        v.wait_for(&status("queued")).await;
        wait_text_in(&v, &tid("desk-status"), "you are next").await;
        v.send("hello, anyone?").await;
        v.save_screenshot("desk-widget-queued.png").await;

        // The agent sees them waiting, with the page they came from.
        wait_text_in(&a, &tid("desk-queued"), "1").await;
        wait_text_in(&a, &tid("desk-queue-item"), "Vera").await;
        wait_text_in(&a, &tid("desk-queue-item"), "/shop/cart").await;
        a.save_screenshot("desk-agent-queue.png").await;
        // Available again: the conversation is theirs.
        a.click(&tid("desk-available")).await;
        wait_text_in(&a, &tid("desk-mine-item"), "Vera").await;
        a.wait_gone(&tid("desk-queue-item"), WAIT).await;
        a.save_screenshot("desk-agent-view.png").await;
        a.click(&tid("desk-open")).await;
        a.wait_message("hello, anyone?", false, Some("received"), WAIT)
            .await;

        v.wait_for(&status("open")).await;
        wait_text_in(&v, &tid("desk-status"), &agent).await;
        a.send("Hi Vera, how can I help?").await;
        v.wait_message("Hi Vera, how can I help?", false, Some("received"), WAIT)
            .await;
        v.send("my order is late").await;
        a.wait_message("my order is late", false, Some("received"), WAIT)
            .await;
        // Read by the agent (a visitor cannot load the group's members, so
        // the message says "read by 1" rather than "read").
        v.wait_read_by("my order is late", 1, "sent").await;

        // A reload of the shop page: same visitor, same conversation.
        v.client.enter_parent_frame().await.ok();
        v.reload().await;
        open_widget(&v).await;
        v.wait_for(&status("open")).await;
        v.wait_message("Hi Vera, how can I help?", false, Some("received"), WAIT)
            .await;
        v.wait_message("hello, anyone?", true, None, WAIT).await;
        v.send("still there?").await;
        a.wait_message("still there?", false, Some("received"), WAIT)
            .await;
        v.save_screenshot("desk-widget-chat.png").await;
        a.save_screenshot("desk-agent-chat.png").await;

        // The agent closes it: the visitor sees it ended.
        a.click(&tid("desk-nav")).await;
        a.click(&tid("desk-close")).await;
        a.wait_gone(&tid("desk-mine-item"), WAIT).await;
        v.wait_for(&status("closed")).await;
        v.wait_for(&tid("visitor-new")).await;
    })
    .await;
}
