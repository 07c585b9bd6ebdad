"""The default shadow-IT catalogue and WAF categories, loaded once by migration; admins edit them afterwards."""

SHADOW_IT_SERVICES = [
    # (name, category, risk, host names)
    ("Dropbox", "File sharing", "medium", ["dropbox.com", "dropboxusercontent.com", "dropboxapi.com"]),
    ("WeTransfer", "File sharing", "high", ["wetransfer.com", "we.tl"]),
    ("MEGA", "File sharing", "high", ["mega.nz", "mega.io", "mega.co.nz"]),
    ("Box", "File sharing", "medium", ["box.com", "boxcdn.net"]),
    ("pCloud", "File sharing", "medium", ["pcloud.com"]),
    ("MediaFire", "File sharing", "high", ["mediafire.com"]),
    ("Google Drive", "File sharing", "medium", ["drive.google.com", "docs.google.com", "drive.usercontent.google.com"]),
    ("OneDrive (personal)", "File sharing", "medium", ["onedrive.live.com", "1drv.ms", "storage.live.com"]),
    ("iCloud Drive", "File sharing", "medium", ["icloud.com", "icloud-content.com"]),
    ("Pastebin", "Paste site", "high", ["pastebin.com", "paste.ee", "ghostbin.com", "hastebin.com"]),
    ("GitHub Gist", "Paste site", "medium", ["gist.github.com", "gist.githubusercontent.com"]),
    ("Telegram", "Messaging", "medium", ["telegram.org", "t.me", "web.telegram.org"]),
    ("WhatsApp Web", "Messaging", "low", ["web.whatsapp.com", "whatsapp.net"]),
    ("Discord", "Messaging", "medium", ["discord.com", "discord.gg", "discordapp.com", "discordapp.net"]),
    ("TeamViewer", "Remote access", "high", ["teamviewer.com"]),
    ("AnyDesk", "Remote access", "high", ["anydesk.com", "net.anydesk.com"]),
    ("ngrok", "Tunnelling", "high", ["ngrok.io", "ngrok.com", "ngrok-free.app", "ngrok.app"]),
    ("Tor Project", "Anonymiser", "high", ["torproject.org"]),
    ("NordVPN", "Consumer VPN", "high", ["nordvpn.com", "nordcdn.com"]),
    ("ProtonVPN", "Consumer VPN", "high", ["protonvpn.com"]),
    ("Trello", "Project management", "low", ["trello.com"]),
    ("Notion", "Project management", "low", ["notion.so", "notion.site"]),
]

WAF_CATEGORIES = [
    # (name, label, description, pattern searched in the URL, case-insensitive)
    ("sql-injection", "SQL injection", "SQL keywords and comment sequences in the query string",
     r"(?:union(?:\s|%20|\+|/\*.*?\*/)+(?:all(?:\s|%20|\+)+)?select|select(?:\s|%20|\+).+(?:\s|%20|\+)from"
     r"|'(?:\s|%20|\+)*or(?:\s|%20|\+)*'?\d|%27(?:%20|\+)*or(?:%20|\+)|sleep\(\d|benchmark\(\d|information_schema)"),
    ("xss", "Cross-site scripting", "Script tags and event handlers in the URL",
     r"(?:<script|%3cscript|javascript:|onerror=|onload=|%3csvg|<svg)"),
    ("path-traversal", "Path traversal", "Parent-directory sequences",
     r"(?:\.\./|\.\.%2f|%2e%2e/|%2e%2e%2f|\.\.\\|%2e%2e%5c)"),
    ("command-injection", "Command injection", "Shell metacharacters followed by common commands",
     r"(?:(?:;|%3b|\||%7c|`|%60|\$\(|%24%28)(?:\s|%20)*(?:cat|wget|curl|bash|sh|nc|id|whoami)\b)"),
    ("sensitive-files", "Sensitive files", "Requests for configuration, VCS and credential files",
     r"(?:/\.env\b|/\.git/|/\.svn/|/wp-config\.php|/etc/passwd|/\.aws/credentials|/\.htpasswd|/id_rsa\b)"),
]

# File types by category for /api/analytics/file-extensions (extensions as stored: lower case, no dot).
FILE_TYPE_CATEGORIES = {
    "Web": ["html", "htm", "xhtml", "css", "js", "mjs", "jsx", "ts", "tsx", "woff", "woff2", "ttf", "otf", "eot",
            "svg", "ico", "webmanifest", "map", "php", "asp", "aspx", "jsp"],
    "Images": ["png", "jpg", "jpeg", "gif", "webp", "bmp", "avif", "heic", "tif", "tiff"],
    "Documents": ["pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "csv", "txt", "rtf",
                  "md", "epub"],
    "Archives": ["zip", "tar", "gz", "tgz", "bz2", "xz", "zst", "7z", "rar", "cab"],
    "Media": ["mp4", "m4v", "mkv", "avi", "mov", "webm", "mp3", "m4a", "aac", "wav", "ogg", "opus", "flac", "m3u8"],
    "Code and data": ["json", "xml", "yaml", "yml", "toml", "py", "go", "rs", "java", "c", "h", "cpp", "rb", "sh",
                      "ps1", "sql", "db", "sqlite", "bak", "dump"],
    "Executables": ["exe", "msi", "dll", "dmg", "pkg", "deb", "rpm", "apk", "appimage", "bin", "jar", "iso", "img"],
}
