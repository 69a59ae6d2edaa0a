/* ferrochat support widget: <script src="https://RELAY/widget.js" async></script>
 * adds a chat bubble that opens the relay's /support.html page in an iframe (the
 * visitor's session stays in the relay origin's storage). Optional
 * attributes on the script tag: data-label (the bubble's text). */
(function () {
  var me = document.currentScript;
  if (!me || window.__ferrochatWidget) return;
  window.__ferrochatWidget = true;
  var origin = new URL(me.src, location.href).origin;
  var label = me.getAttribute("data-label") || "Chat with us";
  var frame = null;
  var bubble = document.createElement("button");
  bubble.type = "button";
  bubble.id = "ferrochat-bubble";
  bubble.setAttribute("aria-expanded", "false");
  bubble.textContent = label;
  bubble.style.cssText = "position:fixed;right:20px;bottom:20px;z-index:2147483647;" +
    "border:0;border-radius:24px;padding:12px 18px;background:#4f46e5;color:#fff;" +
    "font:600 15px system-ui,sans-serif;box-shadow:0 4px 16px rgba(0,0,0,.25);cursor:pointer";
  bubble.addEventListener("click", function () {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.id = "ferrochat-frame";
      frame.title = "Support chat";
      frame.src = origin + "/support.html?page=" + encodeURIComponent(location.href);
      frame.style.cssText = "position:fixed;right:20px;bottom:76px;z-index:2147483647;" +
        "width:min(380px,calc(100vw - 40px));height:min(560px,calc(100vh - 100px));" +
        "border:0;border-radius:14px;box-shadow:0 8px 32px rgba(0,0,0,.3);background:#fff";
      document.body.appendChild(frame);
    } else {
      frame.hidden = !frame.hidden;
    }
    var open = !frame.hidden;
    bubble.setAttribute("aria-expanded", String(open));
    bubble.textContent = open ? "Close chat" : label;
  });
  document.body.appendChild(bubble);
})();
