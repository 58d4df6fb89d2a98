// The sign-in token: read from the URL fragment (never sent to a server, so never in its
// logs), kept in this tab's sessionStorage, and wiped from the address bar at once.

const KEY = "vts.token";

export function takeToken(loc = window.location, history = window.history, storage = window.sessionStorage) {
  const fragment = new URLSearchParams(loc.hash.replace(/^#/, ""));
  const fromLink = fragment.get("token");
  if (fromLink) {
    storage.setItem(KEY, fromLink);
    fragment.delete("token");
    const rest = fragment.toString();
    history.replaceState(null, "", loc.pathname + loc.search + (rest ? `#${rest}` : ""));
  }
  return storage.getItem(KEY);
}

export function saveToken(token, storage = window.sessionStorage) {
  storage.setItem(KEY, token.trim());
}

export function forgetToken(storage = window.sessionStorage) {
  storage.removeItem(KEY);
}

// The claims, unverified (the API verifies): who the dashboard is for, and whether the
// token has visibly expired so we can say so before a round trip.
export function readClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "="))
        .split("")
        .map((c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0"))
        .join(""),
    );
    const claims = JSON.parse(json);
    return typeof claims.sub === "string" ? claims : null;
  } catch (error) {
    return null;
  }
}

export function expired(claims, nowMs = Date.now()) {
  return typeof claims.exp === "number" && claims.exp * 1000 <= nowMs;
}
