// The artist dashboard: sign-in, one period's stats at a glance, posts, per-post panel.
// First load = artist stats (this period and the one before, for the changes) + one page
// of posts: a bounded number of API calls, whatever the number of posts.
import { apiBase, createClient, explain } from "./api.js";
import { chartData, dailyChart, hoursChart } from "./charts.js";
import {
  DEVICE_NAMES, PLAY_ORDER_NAMES, SOURCE_NAMES, addDays, change, channelName, countryName,
  daysBetween, flag, hourLabel, instant, isoDay, longDay, number, previousPeriod, shortDay, timeZone,
} from "./format.js";
import { expired, forgetToken, readClaims, saveToken, takeToken } from "./session.js";

const POSTS_PAGE = 25;
const MAX_DAYS = 366;
// Artwork thumbnails, in CSS pixels (pixel art scales crisply by whole multiples).
const THUMB = 32;
const LARGE = 64;

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const state = {
  client: null,
  artist: null,
  tz: timeZone(),
  range: null,
  stats: null,
  previous: null,
  posts: [],
  cursor: null,
  post: null,
  calls: 0,
  loads: 0, // the newest overview load: answers to older ones are dropped
};

function setState(name) {
  document.body.dataset.state = name;
}

// ---- status messages --------------------------------------------------------------------

function showStatus(target, kind, message, retry) {
  target.replaceChildren();
  target.className = `status ${kind}`;
  if (!message) return;
  if (kind === "loading") target.append(el("span", "spinner"));
  target.append(el("span", "", message));
  if (retry) {
    const button = el("button", "secondary", "Try again");
    button.type = "button";
    button.addEventListener("click", retry);
    target.append(button);
  }
}

function fail(error, target, retry) {
  const advice = explain(error);
  if (advice.signin) {
    forgetToken();
    showSignin(advice.message);
    return;
  }
  setState("error");
  showStatus(target, "error", advice.message, advice.retry ? retry : null);
}

// ---- sign-in ----------------------------------------------------------------------------

function showSignin(reason) {
  setState("signin");
  $("overview").hidden = true;
  $("range").hidden = true;
  $("who").hidden = true;
  $("post-panel").hidden = true;
  showStatus($("status"), "", "");
  $("signin").hidden = false;
  const note = $("signin-reason");
  note.textContent = reason || "Open the dashboard link you were given, or paste your access token below.";
  note.className = reason ? "error-text" : "";
}

function start(token) {
  const claims = token ? readClaims(token) : null;
  if (!token) return showSignin();
  if (!claims) return showSignin("That does not look like a VTS access token. Paste the whole token.");
  if (expired(claims)) {
    forgetToken();
    return showSignin("Your sign-in has expired. Open a fresh dashboard link.");
  }
  const client = createClient(apiBase(window.location.pathname), token);
  state.client = {
    json: (...args) => { state.calls += 1; return client.json(...args); },
    text: (...args) => { state.calls += 1; return client.text(...args); },
  };
  state.artist = claims.sub;
  $("signin").hidden = true;
  $("range").hidden = false;
  $("who").hidden = false;
  $("who").textContent = `Signed in as ${claims.sub}`;
  state.range = presetRange(30);
  $("preset").value = "30";
  $("custom").hidden = true;
  loadOverview({ posts: true });
  openPostFromHash();
}

// ---- period -----------------------------------------------------------------------------

function presetRange(days) {
  const to = isoDay(new Date());
  return { from: addDays(to, -(days - 1)), to, preset: String(days) };
}

function periodLabel(range) {
  return `${longDay(range.from)} – ${longDay(range.to)}`;
}

function onPresetChange() {
  const preset = $("preset").value;
  const custom = preset === "custom";
  $("custom").hidden = !custom;
  if (custom) {
    $("from").value = state.range.from;
    $("to").value = state.range.to;
    $("from").focus();
    return;
  }
  state.range = presetRange(Number(preset));
  refresh();
}

function onCustomSubmit(event) {
  event.preventDefault();
  const from = $("from").value;
  const to = $("to").value;
  const today = isoDay(new Date());
  let problem = null;
  if (!from || !to) problem = "Choose both days.";
  else if (from > to) problem = "The first day must come before the last.";
  else if (to > today) problem = "The last day cannot be in the future.";
  else if (daysBetween(from, to) > MAX_DAYS) problem = `Choose at most ${MAX_DAYS} days.`;
  if (problem) {
    showStatus($("status"), "error", problem);
    return;
  }
  state.range = { from, to, preset: "custom" };
  refresh();
}

function refresh() {
  loadOverview({ posts: false });
  if (state.post !== null) loadPost(state.post);
}

// ---- overview ---------------------------------------------------------------------------

async function loadOverview({ posts }) {
  const { from, to } = state.range;
  const previous = previousPeriod(from, to);
  const artist = encodeURIComponent(state.artist);
  const load = ++state.loads;
  setState("loading");
  $("overview").setAttribute("aria-busy", "true");
  showStatus($("status"), "loading", `Loading your stats for ${periodLabel(state.range)}…`);
  const params = { from, to, tz: state.tz };
  try {
    const calls = [
      state.client.json(`/v1/artists/${artist}/stats`, params),
      // The previous period only feeds the "change" figures: its failure must not hide the rest.
      state.client.json(`/v1/artists/${artist}/stats`, { ...previous, tz: state.tz }).catch(() => null),
    ];
    if (posts) calls.push(state.client.json(`/v1/artists/${artist}/posts`, { sort: "views", limit: POSTS_PAGE }));
    const [stats, before, page] = await Promise.all(calls);
    if (load !== state.loads) return; // the period changed meanwhile
    state.stats = stats;
    state.previous = before;
    if (page) {
      state.posts = [];
      addPosts(page);
    }
    renderOverview();
    showStatus($("status"), "", "");
    setState("ready");
  } catch (error) {
    if (load === state.loads) fail(error, $("status"), () => loadOverview({ posts }));
  } finally {
    if (load === state.loads) $("overview").removeAttribute("aria-busy");
  }
}

function renderOverview() {
  const stats = state.stats;
  $("overview").hidden = false;
  renderTotals($("totals"), stats, state.previous, true);
  const empty = !stats.views && !stats.impressions;
  $("empty").hidden = !empty;
  $("charts").hidden = empty;
  if (!empty) {
    renderDaily(stats.daily || []);
    renderCountries($("countries"), stats.by_country);
    renderHours(stats);
    bars($("devices"), entries(stats.by_device, Object.keys(DEVICE_NAMES)), (key) => [DEVICE_NAMES[key] || key]);
    bars($("sources"), entries(stats.by_source, Object.keys(SOURCE_NAMES)), (key) => [SOURCE_NAMES[key] || key]);
    bars($("channels"), entries(stats.by_channel), (key) => [channelName(key)]);
    bars($("play-order"), entries(stats.by_play_order), (key) => [PLAY_ORDER_NAMES[key] || `Order ${key}`]);
    bars($("referrers"), entries(stats.by_referrer), (key) => [key]);
  }
  renderPosts();
  const fresh = stats.fresh_as_of || stats.computed_at;
  $("fresh").textContent = fresh
    ? `Figures as of ${instant(fresh)}. New views appear within a minute; each finished day is recounted exactly overnight.`
    : "";
}

function renderTotals(target, stats, previous, withPosts) {
  target.replaceChildren();
  const label = state.range ? `vs previous ${daysBetween(state.range.from, state.range.to)} days` : "";
  const approx = stats.unique_visitors_approximate ? "≈ " : "";
  const cards = [
    { key: "views", name: "Views", value: number(stats.views), note: stats.authenticated && stats.authenticated.views ? `${number(stats.authenticated.views)} by signed-in members` : "" },
    { key: "impressions", name: "Impressions", value: number(stats.impressions), note: "passive: feeds, frames, widgets" },
    { key: "unique_visitors", name: "Visitors", value: approx + number(stats.unique_visitors), note: stats.unique_visitors_approximate ? "estimated" : "" },
  ];
  if (withPosts && stats.total_posts !== undefined) {
    cards.push({ key: "total_posts", name: "Posts", value: number(stats.total_posts), note: "", noChange: true });
  }
  for (const card of cards) {
    const box = el("div", "total");
    box.dataset.total = card.key;
    box.append(el("span", "name", card.name), el("strong", "value", card.value));
    const delta = card.noChange || !previous ? null : change(stats[card.key] || 0, previous[card.key] || 0);
    if (delta) {
      const line = el("span", `change ${delta.direction}`);
      const arrow = el("span", "", delta.direction === "up" ? "▲ " : delta.direction === "down" ? "▼ " : "");
      arrow.setAttribute("aria-hidden", "true");
      line.append(arrow, `${delta.text} ${label}`);
      box.append(line);
    }
    if (card.note) box.append(el("span", "note", card.note));
    target.append(box);
  }
}

function renderDaily(daily) {
  const labels = daily.map((row) => shortDay(row.date));
  dailyChart($("daily-chart"), labels, daily.map((row) => row.views || 0), daily.map((row) => row.impressions || 0));
  const body = $("daily-table").tBodies[0];
  body.replaceChildren();
  for (const row of [...daily].reverse()) {
    const tr = el("tr");
    tr.dataset.date = row.date;
    tr.append(el("th", "", longDay(row.date)), el("td", "num", number(row.views)), el("td", "num", number(row.impressions)), el("td", "num", number(row.unique_visitors)));
    tr.firstChild.scope = "row";
    body.append(tr);
  }
}

function renderHours(stats) {
  const hours = stats.by_hour_local || [];
  hoursChart($("hours-chart"), hours.map((_, hour) => hourLabel(hour)), hours);
  $("hours-tz").textContent = `Views by hour of the day, in your time zone (${stats.tz || state.tz}).`;
}

// {key: n} -> [[key, n]] by count, "other" last; `always` keys are listed even at zero.
function entries(counts, always = []) {
  const all = { ...Object.fromEntries(always.map((key) => [key, 0])), ...(counts || {}) };
  return Object.entries(all)
    .filter(([key, n]) => n > 0 || always.includes(key))
    .sort((a, b) => (a[0] === "other") - (b[0] === "other") || b[1] - a[1]);
}

function bars(list, rows, label) {
  list.replaceChildren();
  const total = rows.reduce((sum, [, n]) => sum + n, 0);
  if (!total) {
    list.append(el("li", "none", "Nothing in this period yet."));
    return;
  }
  const max = Math.max(...rows.map(([, n]) => n));
  for (const [key, n] of rows) {
    const item = el("li");
    item.dataset.key = key;
    const name = el("span", "name");
    name.append(...label(key));
    const count = el("span", "count", number(n));
    count.title = `${Math.round((n / total) * 100)}% of ${number(total)}`;
    const bar = el("span", "bar");
    const fill = el("span", "fill");
    fill.style.width = `${Math.max(1, (n / max) * 100)}%`;
    bar.append(fill);
    item.append(name, count, bar);
    list.append(item);
  }
}

function renderCountries(list, counts) {
  bars(list, entries(counts), (code) => {
    const icon = el("span", "flag", code === "other" ? "🌐" : flag(code));
    icon.setAttribute("aria-hidden", "true");
    return [icon, countryName(code)];
  });
}

// ---- posts: title, artwork, page on the site ----------------------------------------------

function postName(post) {
  return (post && post.title) || `Post ${post.post_id}`;
}

// Only http(s) URLs reach an <img src> or <a href> (the API sends https; this is a seatbelt).
function webUrl(text) {
  if (typeof text !== "string" || !text) return null;
  try {
    const url = new URL(text);
    return url.protocol === "https:" || url.protocol === "http:" ? url : null;
  } catch (error) {
    return null;
  }
}

function artFrame(className) {
  const frame = el("span", `${className} none`);
  frame.setAttribute("aria-hidden", "true");
  return frame;
}

// The artwork, crisp (CSS: image-rendering: pixelated) at a fixed size, so nothing moves
// while it loads; an empty frame of the same size when there is none or it cannot load
// (e.g. an origin the page's Content-Security-Policy does not allow).
function artImage(post, large) {
  const className = `art ${large ? "large" : "small"}`;
  const src = webUrl(post.art_url);
  if (!src) return artFrame(className);
  const img = el("img", className);
  img.width = large ? LARGE : THUMB;
  img.height = large ? LARGE : THUMB;
  img.alt = postName(post);
  img.decoding = "async";
  if (!large) img.loading = "lazy";
  img.referrerPolicy = "no-referrer";
  img.addEventListener("error", () => img.replaceWith(artFrame(className)), { once: true });
  img.src = src.href;
  return img;
}

function siteLink(post, className, text) {
  const url = webUrl(post.url);
  if (!url) return null;
  const link = el("a", className, text(url));
  link.href = url.href;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  return link;
}

// A row's first cell: the artwork (a link to its page on the site when known), its title
// (opens the post's own panel) and the site's link.
function postCell(post) {
  const cell = el("div", "post-cell");
  const art = artImage(post, false);
  const onSite = siteLink(post, "art-link", () => "");
  if (onSite) {
    onSite.setAttribute("aria-label", `${postName(post)} on ${webUrl(post.url).host}`);
    onSite.append(art);
    cell.append(onSite);
  } else {
    cell.append(art);
  }
  const names = el("span", "post-names");
  const open = el("a", "open", postName(post));
  open.href = `#post=${encodeURIComponent(post.post_id)}`;
  open.title = "This post's stats in the chosen period";
  names.append(open);
  const site = siteLink(post, "site-link", (url) => `${url.host}${url.pathname} ↗`);
  if (site) names.append(site);
  cell.append(names);
  return cell;
}

function showPostHead(post) {
  $("post-title").textContent = `${postName(post)} — ${periodLabel(state.range)}`;
  const slot = $("post-art");
  if (slot.dataset.src !== String(post.art_url || "")) {
    slot.dataset.src = String(post.art_url || "");
    slot.replaceChildren(artImage(post, true));
  }
  const link = $("post-site");
  const url = webUrl(post.url);
  link.hidden = !url;
  if (url) {
    link.href = url.href;
    link.textContent = `See it on ${url.host} ↗`;
  }
}

// ---- top posts (all-time views, paginated) -----------------------------------------------

function addPosts(page) {
  const rows = page.posts || page.items || [];
  state.posts.push(...rows);
  state.cursor = page.next_cursor || page.cursor || null;
}

function renderPosts() {
  const body = $("posts").tBodies[0];
  body.replaceChildren();
  const total = state.stats && state.stats.total_posts;
  const count = total ? `${number(total)} ${total === 1 ? "post" : "posts"}, m` : "M";
  $("posts-sub").textContent = `${count}ost viewed first (all-time figures, today included). Open one for its stats in the chosen period.`;
  if (!state.posts.length) {
    const tr = el("tr");
    const td = el("td", "none", "No views of your posts yet.");
    td.colSpan = 5;
    tr.append(td);
    body.append(tr);
  }
  const max = Math.max(1, ...state.posts.map((row) => row.views || 0));
  for (const row of state.posts) {
    const tr = el("tr");
    tr.dataset.post = row.post_id;
    const name = el("th");
    name.scope = "row";
    name.append(postCell(row));
    const share = el("td", "share");
    const bar = el("span", "bar");
    const fill = el("span", "fill");
    fill.style.width = `${((row.views || 0) / max) * 100}%`;
    bar.append(fill);
    share.append(bar);
    tr.append(name, el("td", "num", number(row.views)), el("td", "num", number(row.impressions)), el("td", "when", instant(row.last_view_at)), share);
    body.append(tr);
  }
  $("more-posts").hidden = !state.cursor;
}

async function morePosts() {
  const button = $("more-posts");
  button.disabled = true;
  button.textContent = "Loading…";
  try {
    const page = await state.client.json(`/v1/artists/${encodeURIComponent(state.artist)}/posts`, { sort: "views", limit: POSTS_PAGE, cursor: state.cursor });
    addPosts(page);
    renderPosts();
  } catch (error) {
    fail(error, $("status"), morePosts);
  } finally {
    button.disabled = false;
    button.textContent = "Show more posts";
  }
}

// ---- one post ---------------------------------------------------------------------------

function openPostFromHash() {
  const match = /(?:^#|&)post=(\d+)/.exec(window.location.hash);
  if (match && state.client) loadPost(Number(match[1]));
}

async function loadPost(postId) {
  state.post = postId;
  const panel = $("post-panel");
  panel.hidden = false;
  showPostHead(state.posts.find((row) => row.post_id === postId) || { post_id: postId });
  $("post-body").hidden = true;
  panel.scrollIntoView({ block: "start" });
  showStatus($("post-status"), "loading", "Loading this post's stats…");
  try {
    const stats = await state.client.json(`/v1/posts/${postId}/stats`, { from: state.range.from, to: state.range.to, tz: state.tz });
    if (state.post !== postId) return; // another post was opened meanwhile
    showPostHead({ post_id: postId, title: stats.title, art_url: stats.art_url, url: stats.url });
    renderTotals($("post-totals"), stats, null, false);
    const daily = stats.daily || [];
    dailyChart($("post-chart"), daily.map((row) => shortDay(row.date)), daily.map((row) => row.views || 0), daily.map((row) => row.impressions || 0));
    renderCountries($("post-countries"), stats.by_country);
    bars($("post-devices"), entries(stats.by_device, Object.keys(DEVICE_NAMES)), (key) => [DEVICE_NAMES[key] || key]);
    bars($("post-sources"), entries(stats.by_source, Object.keys(SOURCE_NAMES)), (key) => [SOURCE_NAMES[key] || key]);
    bars($("post-channels"), entries(stats.by_channel), (key) => [channelName(key)]);
    $("post-body").dataset.post = String(postId);
    $("post-body").hidden = false;
    showStatus($("post-status"), "", "");
  } catch (error) {
    const advice = explain(error);
    if (advice.signin) return fail(error, $("post-status"));
    showStatus($("post-status"), "error", error.status === 404 ? `Post ${postId} was not found.` : advice.message, advice.retry ? () => loadPost(postId) : null);
  }
}

function closePost() {
  state.post = null;
  $("post-panel").hidden = true;
  history.replaceState(null, "", window.location.pathname + window.location.search);
}

// ---- CSV --------------------------------------------------------------------------------

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const link = el("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function overviewCsv() {
  if (!state.stats) return;
  // The same columns as the API's per-post stats.csv.
  const lines = ["date,views,impressions,unique_visitors,authenticated_views,authenticated_impressions,authenticated_unique_visitors"];
  const signedIn = (state.stats.authenticated && state.stats.authenticated.daily) || [];
  (state.stats.daily || []).forEach((row, n) => {
    const auth = signedIn[n] || {};
    lines.push([row.date, row.views, row.impressions, row.unique_visitors, auth.views, auth.impressions, auth.unique_visitors].map((v) => v ?? 0).join(","));
  });
  download(`vts-${state.artist}-${state.range.from}-${state.range.to}.csv`, lines.join("\r\n") + "\r\n");
}

async function postCsv() {
  if (state.post === null) return;
  const { from, to } = state.range;
  try {
    const text = await state.client.text(`/v1/posts/${state.post}/stats.csv`, { from, to });
    download(`vts-post-${state.post}-${from}-${to}.csv`, text);
  } catch (error) {
    showStatus($("post-status"), "error", explain(error).message);
  }
}

// ---- wiring -----------------------------------------------------------------------------

function init() {
  $("preset").addEventListener("change", onPresetChange);
  $("range").addEventListener("submit", onCustomSubmit);
  $("csv").addEventListener("click", overviewCsv);
  $("post-csv").addEventListener("click", postCsv);
  $("post-close").addEventListener("click", closePost);
  $("more-posts").addEventListener("click", morePosts);
  $("signout").addEventListener("click", () => {
    forgetToken();
    state.client = null;
    showSignin("You are signed out.");
  });
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    saveToken(token);
    $("token").value = "";
    start(token);
  });
  window.addEventListener("hashchange", openPostFromHash);
  // For tests and the curious: what the charts show and how many API calls were made.
  window.vtsDashboard = { chartData, calls: () => state.calls };
  start(takeToken());
}

init();
