//! Well-known mail providers: their public IMAP and SMTP servers, the domains and MX hosts that
//! identify them, and whether they want app passwords instead of the account password. Both the
//! discovery and the hosted form's preset list read this one table.

use crate::Endpoint;

/// One provider's published settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub id: &'static str,
    pub name: &'static str,
    /// Address domains served by this provider.
    pub domains: &'static [&'static str],
    /// Suffixes of the provider's MX hosts (custom domains hosted there).
    pub mx_suffixes: &'static [&'static str],
    pub imap: Endpoint,
    pub smtp: Endpoint,
    /// Where the provider explains app passwords, when it requires them for IMAP.
    pub app_password: Option<&'static str>,
}

const fn tls(host: &'static str, port: u16) -> Endpoint {
    Endpoint {
        host,
        port,
        secure: true,
    }
}

const fn starttls(host: &'static str, port: u16) -> Endpoint {
    Endpoint {
        host,
        port,
        secure: false,
    }
}

pub const PRESETS: &[Preset] = &[
    Preset {
        id: "gmail",
        name: "Gmail / Google Workspace",
        domains: &["gmail.com", "googlemail.com"],
        mx_suffixes: &["google.com", "googlemail.com"],
        imap: tls("imap.gmail.com", 993),
        smtp: tls("smtp.gmail.com", 465),
        app_password: Some("https://support.google.com/accounts/answer/185833"),
    },
    Preset {
        id: "outlook",
        name: "Outlook.com / Microsoft 365",
        domains: &[
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "hotmail.co.uk",
            "outlook.de",
            "hotmail.de",
            "hotmail.fr",
            "live.co.uk",
        ],
        mx_suffixes: &["mail.protection.outlook.com", "olc.protection.outlook.com"],
        imap: tls("outlook.office365.com", 993),
        smtp: starttls("smtp.office365.com", 587),
        app_password: None,
    },
    Preset {
        id: "yahoo",
        name: "Yahoo Mail",
        domains: &[
            "yahoo.com",
            "ymail.com",
            "rocketmail.com",
            "yahoo.co.uk",
            "yahoo.de",
        ],
        mx_suffixes: &["yahoodns.net"],
        imap: tls("imap.mail.yahoo.com", 993),
        smtp: tls("smtp.mail.yahoo.com", 465),
        app_password: Some("https://help.yahoo.com/kb/SLN15241.html"),
    },
    Preset {
        id: "aol",
        name: "AOL Mail",
        domains: &["aol.com", "aim.com"],
        mx_suffixes: &[],
        imap: tls("imap.aol.com", 993),
        smtp: tls("smtp.aol.com", 465),
        app_password: Some("https://help.aol.com/articles/Create-and-manage-app-password"),
    },
    Preset {
        id: "icloud",
        name: "iCloud Mail",
        domains: &["icloud.com", "me.com", "mac.com"],
        mx_suffixes: &["mail.icloud.com"],
        imap: tls("imap.mail.me.com", 993),
        smtp: starttls("smtp.mail.me.com", 587),
        app_password: Some("https://support.apple.com/en-us/102654"),
    },
    Preset {
        id: "fastmail",
        name: "Fastmail",
        domains: &["fastmail.com", "fastmail.fm"],
        mx_suffixes: &["messagingengine.com"],
        imap: tls("imap.fastmail.com", 993),
        smtp: tls("smtp.fastmail.com", 465),
        app_password: Some("https://www.fastmail.help/hc/en-us/articles/360058752854"),
    },
    Preset {
        id: "zoho",
        name: "Zoho Mail",
        domains: &["zoho.com", "zohomail.com"],
        mx_suffixes: &["zoho.com"],
        imap: tls("imap.zoho.com", 993),
        smtp: tls("smtp.zoho.com", 465),
        app_password: None,
    },
    Preset {
        id: "gmx",
        name: "GMX",
        domains: &["gmx.net", "gmx.de", "gmx.at", "gmx.ch"],
        mx_suffixes: &["gmx.net"],
        imap: tls("imap.gmx.net", 993),
        smtp: tls("mail.gmx.net", 465),
        app_password: None,
    },
    Preset {
        id: "gmxcom",
        name: "GMX.com",
        domains: &["gmx.com", "gmx.us"],
        mx_suffixes: &["gmx.com"],
        imap: tls("imap.gmx.com", 993),
        smtp: tls("mail.gmx.com", 465),
        app_password: None,
    },
    Preset {
        id: "webde",
        name: "WEB.DE",
        domains: &["web.de"],
        mx_suffixes: &["web.de"],
        imap: tls("imap.web.de", 993),
        smtp: starttls("smtp.web.de", 587),
        app_password: None,
    },
    Preset {
        id: "mailru",
        name: "Mail.ru",
        domains: &["mail.ru", "inbox.ru", "list.ru", "bk.ru"],
        mx_suffixes: &["mail.ru"],
        imap: tls("imap.mail.ru", 993),
        smtp: tls("smtp.mail.ru", 465),
        app_password: None,
    },
    Preset {
        id: "yandex",
        name: "Yandex Mail",
        domains: &["yandex.com", "yandex.ru", "ya.ru"],
        mx_suffixes: &["yandex.net", "yandex.ru"],
        imap: tls("imap.yandex.com", 993),
        smtp: tls("smtp.yandex.com", 465),
        app_password: None,
    },
    Preset {
        id: "mailboxorg",
        name: "mailbox.org",
        domains: &["mailbox.org"],
        mx_suffixes: &["mailbox.org"],
        imap: tls("imap.mailbox.org", 993),
        smtp: tls("smtp.mailbox.org", 465),
        app_password: None,
    },
    Preset {
        id: "posteo",
        name: "Posteo",
        domains: &["posteo.de", "posteo.net"],
        mx_suffixes: &["posteo.de"],
        imap: tls("posteo.de", 993),
        smtp: tls("posteo.de", 465),
        app_password: None,
    },
];

/// The provider that serves addresses at `domain` (lowercase, no trailing dot).
pub fn by_domain(domain: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.domains.contains(&domain))
}

/// The provider whose MX hosts end in `mx_host` (lowercase, no trailing dot).
pub fn by_mx(mx_host: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| {
        p.mx_suffixes
            .iter()
            .any(|s| mx_host == *s || mx_host.ends_with(&format!(".{s}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_mx_hosts_find_their_provider() {
        assert_eq!(by_domain("gmail.com").map(|p| p.id), Some("gmail"));
        assert_eq!(by_domain("example.com"), None);
        assert_eq!(
            by_mx("aspmx.l.google.com").map(|p| p.imap.host),
            Some("imap.gmail.com")
        );
        assert_eq!(
            by_mx("contoso-com.mail.protection.outlook.com").map(|p| p.id),
            Some("outlook")
        );
        // A suffix matches whole labels only.
        assert_eq!(by_mx("notgoogle.com"), None);
    }

    #[test]
    fn ids_and_domains_are_unique() {
        let mut ids: Vec<&str> = PRESETS.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), PRESETS.len());
        let mut domains: Vec<&str> = PRESETS
            .iter()
            .flat_map(|p| p.domains.iter().copied())
            .collect();
        let total = domains.len();
        domains.sort_unstable();
        domains.dedup();
        assert_eq!(domains.len(), total);
    }
}
