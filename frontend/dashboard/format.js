// Formatting for people: numbers, changes, countries with flags, days and periods.

const locale = navigator.language || "en";
const numberFormat = new Intl.NumberFormat(locale);
const percentFormat = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 0, signDisplay: "exceptZero" });
let regionNames = null;
try {
  regionNames = new Intl.DisplayNames([locale, "en"], { type: "region" });
} catch (error) {
  regionNames = null; // very old browsers: the ISO code stands in for the name
}

export function number(n) {
  return numberFormat.format(n || 0);
}

// The change of a total against the previous period of the same length.
export function change(current, previous) {
  if (previous === undefined || previous === null) return null;
  if (!previous) return current ? { text: "new", direction: "up" } : null; // 0 -> 0 says nothing
  const ratio = (current - previous) / previous;
  if (Math.abs(ratio) < 0.005) return { text: "no change", direction: "flat" };
  return { text: percentFormat.format(ratio), direction: ratio > 0 ? "up" : "down" };
}

// "BR" -> 🇧🇷: two regional indicator symbols.
export function flag(code) {
  if (!/^[A-Z]{2}$/.test(code || "")) return "🏳️";
  return String.fromCodePoint(...[...code].map((c) => 0x1f1e6 + c.charCodeAt(0) - 65));
}

export function countryName(code) {
  if (code === "other") return "Other countries";
  if (!/^[A-Z]{2}$/.test(code || "")) return "Unknown";
  try {
    return (regionNames && regionNames.of(code)) || code;
  } catch (error) {
    return code;
  }
}

export const DEVICE_NAMES = { desktop: "Desktop", mobile: "Phone", tablet: "Tablet", player: "Frame (player)" };
export const SOURCE_NAMES = { web: "Website", widget: "Embedded widget", api: "API", player: "Frame (player)" };
// p3a firmware: 1 = by date (its default), 2 = random; 0 = the channel's own order.
export const PLAY_ORDER_NAMES = { 0: "Channel order", 1: "By date", 2: "Random" };

export function channelName(token) {
  if (token === "-" || token === "" || token == null) return "No channel";
  return token.replace(/_/g, " ");
}

// ---- days (YYYY-MM-DD, in the viewer's time zone) ---------------------------------------

export function timeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch (error) {
    return "UTC";
  }
}

export function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export function parseDay(day) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d);
}

export function addDays(day, n) {
  const date = parseDay(day);
  date.setDate(date.getDate() + n);
  return isoDay(date);
}

export function daysBetween(from, to) {
  return Math.round((parseDay(to) - parseDay(from)) / 86_400_000) + 1;
}

// The period before [from, to], of the same length.
export function previousPeriod(from, to) {
  const length = daysBetween(from, to);
  return { from: addDays(from, -length), to: addDays(from, -1) };
}

const dayFormat = new Intl.DateTimeFormat(locale, { day: "numeric", month: "short" });
const longDayFormat = new Intl.DateTimeFormat(locale, { day: "numeric", month: "short", year: "numeric" });

export function shortDay(day) {
  return dayFormat.format(parseDay(day));
}

export function longDay(day) {
  return longDayFormat.format(parseDay(day));
}

export function instant(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "—";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(at);
}

export function hourLabel(hour) {
  return `${String(hour).padStart(2, "0")}:00`;
}
