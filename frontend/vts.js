/*
 * vts.js — the VTS tracker for pages that show artworks (contract: DESIGN.md §3).
 *
 *   <script async src="https://API/v1/vts.js" data-post="123" data-source="widget"></script>
 *
 * Counts a View of data-post once the page has been visible for 2 s in total, and exposes
 * window.vts.view(postId) / window.vts.impression(postId). Calls queued before the script
 * loaded (window.vts = [["view", 7]]) are replayed. No cookies, no storage, nothing sent
 * when the browser signals Global Privacy Control.
 *
 * Plain ES5 on purpose: it must run on any page, and stay under 1 KB gzipped.
 */
(function (win, doc, nav) {
  // currentScript is null when a tag manager injects us late in some browsers: look it up.
  var script = doc.currentScript || doc.querySelector('script[src*="/v1/vts.js"]');
  var src = script && script.src;
  var api = src && src.replace(/\/v1\/vts\.js([?#].*)?$/, "");
  var source = (script && script.getAttribute("data-source")) || "web";
  var post = script && script.getAttribute("data-post");
  var queued = win.vts;

  function send(id, intent) {
    // GPC is a request not to be tracked: send nothing at all.
    if (nav.globalPrivacyControl || !api || !id) return;
    var url = api + "/v1/posts/" + encodeURIComponent(id) + "/views";
    // A string body goes out as text/plain: a "simple" request, no preflight, which the
    // API's wildcard CORS accepts (a JSON-typed beacon would be preflighted and refused).
    var body = JSON.stringify({ intent: intent, source: source });
    try {
      if (nav.sendBeacon && nav.sendBeacon(url, body)) return;
    } catch (e) {}
    if (win.fetch) {
      win.fetch(url, {
        method: "POST",
        body: body,
        headers: { "Content-Type": "text/plain" },
        keepalive: true,
        mode: "cors",
        credentials: "omit"
      })["catch"](function () {});
    }
  }

  var vts = {
    view: function (id) { send(id, "view"); },
    impression: function (id) { send(id, "impression"); }
  };
  win.vts = vts;
  if (queued && queued.length) {
    for (var i = 0; i < queued.length; i++) {
      if (vts[queued[i][0]]) vts[queued[i][0]](queued[i][1]);
    }
  }

  if (!post) return;
  // Visible time adds up across hide/show: a View needs 2 s of it in total.
  var left = 2000, since = 0, timer;
  function update() {
    if (doc.visibilityState == "visible") {
      if (!since) {
        since = Date.now();
        timer = setTimeout(function () {
          doc.removeEventListener("visibilitychange", update);
          vts.view(post);
        }, left);
      }
    } else if (since) {
      clearTimeout(timer);
      left -= Date.now() - since;
      since = 0;
    }
  }
  doc.addEventListener("visibilitychange", update);
  update();
})(window, document, navigator);
