// The stats API client: Bearer token in a header, errors as ApiError with a person's message.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// The dashboard is served at {base}/dashboard, beside the API's /v1 routes
// (base is "" under chalice local and the stage prefix, e.g. "/api", on API Gateway).
export function apiBase(pathname) {
  return pathname.replace(/\/dashboard\/?$/, "");
}

export function createClient(base, token, fetchImpl = window.fetch.bind(window)) {
  async function request(path, params, accept) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(name, value);
    }
    const url = `${base}${path}${query.toString() ? `?${query}` : ""}`;
    let response;
    try {
      response = await fetchImpl(url, {
        headers: { Authorization: `Bearer ${token}`, Accept: accept },
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError(0, "network", "Could not reach VTS. Check your connection and try again.");
    }
    if (!response.ok) {
      let code = "http_" + response.status;
      let message = response.statusText || "request failed";
      try {
        const body = await response.json();
        if (body && body.error) {
          code = body.error.code || code;
          message = body.error.message || message;
        }
      } catch (ignored) {
        // not our JSON error body (a proxy's page): keep the status line
      }
      const retry = Number(response.headers.get("Retry-After")) || undefined;
      throw new ApiError(response.status, code, message, retry);
    }
    return response;
  }

  return {
    async json(path, params) {
      return (await request(path, params, "application/json")).json();
    },
    async text(path, params) {
      return (await request(path, params, "text/csv")).text();
    },
  };
}

// What to tell a person about an error, and whether signing in again would help.
export function explain(error) {
  if (!(error instanceof ApiError)) {
    return { message: "Something unexpected went wrong while showing your stats.", retry: true };
  }
  switch (error.status) {
    case 0:
      return { message: error.message, retry: true };
    case 401:
      return { message: "Your sign-in has expired or the token is not valid. Sign in again with a fresh dashboard link.", signin: true };
    case 403:
      return { message: "This token may not read these stats: an artist sees only their own posts.", signin: true };
    case 404:
      return { message: "Not found: it may have been deleted.", retry: false };
    case 429:
    case 503:
      return {
        message: `VTS is busy right now. Try again${error.retryAfter ? ` in ${error.retryAfter} s` : " in a moment"}.`,
        retry: true,
      };
    default:
      if (error.status >= 500) {
        return { message: `VTS could not answer (${error.code}). Try again in a moment.`, retry: true };
      }
      return { message: `VTS refused the request: ${error.message}`, retry: false };
  }
}
