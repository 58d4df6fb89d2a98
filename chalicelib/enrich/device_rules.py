"""The project's own user-agent rules, used by :mod:`chalicelib.enrich.device`.

Owns the small, general rules we add on top of the parser libraries: automation and
HTTP-library markers, contact details that only robots put in a user
agent, and the family names and platform tokens that turn a parse into a form factor. It holds
no user-agent strings from any corpus, only product tokens and platform words.

Everything here is plain data and compiled :mod:`re` patterns, so importing it is cheap.
"""

from __future__ import annotations

import re

# Browser automation and headless engines. Electron is deliberately absent: Electron apps
# (Slack, VS Code...) are people at a desktop, and a headless Electron says "HeadlessChrome".
_HEADLESS = (
    r"headless|phantomjs|puppeteer|playwright|slimerjs|selenium|webdriver|chrome-lighthouse"
    r"|lighthouse|pagespeed|cypress|nightmare|zombie\.js|htmlunit|jsdom"
)

# HTTP client libraries and command-line tools, matched as a product token: at the start or
# after a separator, followed by "/" or the end of the string, so words inside a device model
# or a browser name do not trigger it.
_LIBRARIES = (
    r"curl|libcurl|wget|python-requests|python-urllib\d?|python-httpx|httpx|aiohttp|urllib\d?"
    r"|go-http-client|okhttp|jakarta\ commons-httpclient|apache-httpclient"
    r"|apache-httpasyncclient|libwww-perl|lwp::simple|lwp-request|axios|node-fetch|undici"
    r"|superagent|request-promise|postmanruntime|insomnia|httpie|scrapy|mechanize|guzzlehttp"
    r"|faraday|rest-client|http\.rb|typhoeus|reqwest|hackney|winhttp|windowspowershell"
    r"|powershell|k6|jmeter|apache-bench|zgrab|masscan|nmap|nikto|sqlmap|nuclei|restsharp"
    r"|fasthttp"
)
# Language runtimes' default user agents carry a version right after the name
# ("Java/17.0.2", "Python/3.11"); "Java/Jbed" on an old phone does not.
_RUNTIMES = r"java|python|php|ruby|perl|node|deno|bun|go|dart"

AUTOMATION_RE = re.compile(
    rf"(?:{_HEADLESS})"
    rf"|(?:^|[\s;(,])(?:{_LIBRARIES})(?:/|$)"
    rf"|(?:^|[\s;(,])(?:{_RUNTIMES})/\d",
    re.IGNORECASE,
)

# Robots identify their operator with a URL, a domain or an e-mail address; browsers never
# do. Top-level domains are matched in lower case only, so ".NET CLR" (old IE) is not one.
CONTACT_RE = re.compile(
    r"(?i:https?://|\bwww\.|\+http|\bmailto:)"
    r"|[\w.+-]@[a-z0-9-]+\.[a-z]"
    r"|\b[A-Za-z0-9-]{2,}\.(?:com|net|org|io|ai|co|info|dev|app|me|fr|de|uk|ru|jp|cn|nl|pl|it|es)\b"
)

# Shapes a browser never sends, though robots borrowing a browser's user agent often do:
# * "Mozilla/5.0 AppleWebKit/..." with no platform in the first parenthesis (every browser
#   names it: "Mozilla/5.0 (Windows NT 10.0; ...)");
# * "compatible; Name" inside WebKit's "(KHTML, like Gecko ...)" comment, the robots'
#   convention for naming themselves in a Chrome-like string.
BORROWED_BROWSER_RE = re.compile(
    r"^Mozilla/\d+\.\d+\s+(?:AppleWebKit|\(KHTML|\(compatible\)|$)"
    r"|\(KHTML, like Gecko[;,]\s*compatible"
)

# ua-parser device families that are tablets (the same list user-agents uses).
TABLET_DEVICE_FAMILIES = frozenset(
    {
        "iPad",
        "BlackBerry Playbook",
        "Blackberry Playbook",
        "Kindle",
        "Kindle Fire",
        "Kindle Fire HD",
        "Galaxy Tab",
        "Xoom",
        "Dell Streak",
    }
)
MOBILE_DEVICE_FAMILIES = frozenset(
    {"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone", "PlayStation Vita"}
)
MOBILE_OS_FAMILIES = frozenset(
    {
        "iOS",
        "Windows Phone",
        "Windows Phone OS",
        "Windows Mobile",
        "Windows CE",
        "Symbian OS",
        "Symbian^3",
        "Bada",
        "BlackBerry OS",
        "BlackBerry Tablet OS",
        "KaiOS",
        "Firefox OS",
        "Maemo",
        "MeeGo",
        "Sailfish",
        "Tizen",
        "webOS",
        "HarmonyOS",
    }
)
MOBILE_BROWSER_FAMILIES = frozenset(
    {
        "IE Mobile",
        "Opera Mobile",
        "Opera Mini",
        "Chrome Mobile",
        "Chrome Mobile WebView",
        "Chrome Mobile iOS",
        "Firefox Mobile",
        "Mobile Safari",
        "Mobile Safari UI/WKWebView",
        "UC Browser",
        "Edge Mobile",
    }
)

# Explicit tablet words. "Tablet PC" is the Windows XP/IE tablet-pen flag on desktops.
TABLET_TOKEN_RE = re.compile(
    r"\bipad\b|\bkindle\b|\bsilk/|playbook|\bopera tablet\b|\btablet(?! pc)\b",
    re.IGNORECASE,
)
# Windows 8+ with Internet Explorer's "Touch" token, or Windows on ARM (RT): Windows tablets.
WINDOWS_TABLET_RE = re.compile(r"Windows NT [\d.]+;(?: [^)]*;)? (?:ARM|Touch)\b")
PHONE_TOKEN_RE = re.compile(
    r"\biphone\b|\bipod\b|windows phone|\bmidp\b|\bj2me\b|\bblackberry|\bsymbian|\bkaios\b"
    r"|\bnokia|\bup\.browser|\bopera mini\b|\bmobi",
    re.IGNORECASE,
)
# Desktop platforms. "Macintosh" stays desktop even with touch: iPadOS 13+ sends a Mac user
# agent and cannot be told from a Mac by the user agent alone.
DESKTOP_TOKEN_RE = re.compile(
    r"\bWindows NT\b|\bWin(?:dows ?)?(?:95|98|9x|2000|XP|ME|16|32|64)\b|\bWindows;|\bMacintosh\b"
    r"|\bMac OS X\b|\bMac_PowerPC\b|\bX11\b|\bCrOS\b|\bLinux (?:x86_64|i[3-6]86|amd64)\b"
    r"|\b(?:Free|Open|Net)BSD\b|\bSunOS\b|\bHaiku\b|\bAmigaOS|\bOS/2\b|\bBeOS\b|\bWin32\b"
    r"|\bwin(?:7|8|10|11)\b|\bCYGWIN",
    re.IGNORECASE,
)
# Chrome's reduced user agent on Android ("Android 10; K)") carries no model: the "Mobile"
# token is then the only signal, and the device database has nothing to add.
ANDROID_REDUCED_RE = re.compile(r"Android [\d.]+; K\)")
