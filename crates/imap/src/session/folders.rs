use super::*;
use crate::mime;

impl Session {
    pub(super) async fn create(&mut self, tag: &str, name: &str) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        match self.core.create_mailbox(self.access(), &name).await {
            Ok(_) => Reply::new(ok(tag, "Create completed"), Next::Command),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    pub(super) async fn delete(&mut self, tag: &str, name: &str) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let result = match self.find(&name).await {
            Ok(m) => {
                if self.selected.as_ref().is_some_and(|s| s.id == m.id) {
                    self.selected = None;
                }
                self.core.delete_mailbox(self.access(), m.id).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Reply::new(ok(tag, "Delete completed"), Next::Command),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    pub(super) async fn rename(&mut self, tag: &str, from: &str, to: &str) -> Reply {
        let (from, to) = match (self.internal_name(from), self.internal_name(to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let result = match self.find(&from).await {
            Ok(m) => self.core.rename_mailbox(self.access(), m.id, &to).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Reply::new(ok(tag, "Rename completed"), Next::Command),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    pub(super) async fn subscribe(&mut self, tag: &str, name: &str, on: bool) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        // RFC 9051 §6.3.7: any name may be subscribed, existing or not.
        let result = self.core.set_subscription(self.access(), &name, on).await;
        match result {
            Ok(()) => Reply::new(ok(tag, "Done"), Next::Command),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    pub(super) async fn list(
        &mut self,
        tag: &str,
        reference: &str,
        patterns: &[String],
        options: &ListOptions,
    ) -> Reply {
        let mut out = Vec::new();
        let verb = if options.lsub { "LSUB" } else { "LIST" };
        if patterns.len() == 1 && patterns[0].is_empty() {
            out.extend_from_slice(format!("* {verb} (\\Noselect) \"/\" \"\"\r\n").as_bytes());
            out.extend(ok(tag, "List completed"));
            return Reply::new(out, Next::Command);
        }
        let mailboxes = match self.core.list_mailboxes(self.access()).await {
            Ok(m) => m,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let mut compiled = Vec::new();
        for p in patterns {
            let full = format!("{reference}{p}");
            let full = if self.utf8 {
                full
            } else {
                match utf7::decode(&full) {
                    Some(f) => f,
                    None => {
                        return Reply::new(
                            bad(tag, "Invalid modified UTF-7 pattern"),
                            Next::Command,
                        );
                    }
                }
            };
            compiled.push(full.chars().collect::<Vec<char>>());
        }
        let matches = |name: &str| {
            let chars: Vec<char> = name.chars().collect();
            compiled.iter().any(|p| {
                if name == "INBOX" {
                    let upper: Vec<char> = p.iter().map(|c| c.to_ascii_uppercase()).collect();
                    pattern_matches(&upper, &chars) || pattern_matches(p, &chars)
                } else {
                    pattern_matches(p, &chars)
                }
            })
        };
        let by_name: HashMap<&str, &Mailbox> =
            mailboxes.iter().map(|m| (m.name.as_str(), m)).collect();
        let wants_subscriptions =
            options.lsub || options.subscribed_only || options.return_subscribed;
        let subscriptions: std::collections::BTreeSet<String> = if wants_subscriptions {
            match self.core.subscriptions(self.access()).await {
                Ok(s) => s.into_iter().collect(),
                Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
            }
        } else {
            Default::default()
        };
        // What is listed: the mailboxes, or with LSUB and LIST (SUBSCRIBED)
        // the subscribed names and their parents (RFC 5258 §3.5, RFC 3501
        // §6.3.9), existing or not.
        let by_subscription = options.lsub || options.subscribed_only;
        let mut candidates: Vec<&str> = if by_subscription {
            let mut names: std::collections::BTreeSet<&str> = Default::default();
            for s in &subscriptions {
                names.insert(s);
                let mut rest = s.as_str();
                while let Some((parent, _)) = rest.rsplit_once('/') {
                    names.insert(parent);
                    rest = parent;
                }
            }
            names.into_iter().collect()
        } else {
            mailboxes.iter().map(|m| m.name.as_str()).collect()
        };
        candidates.sort_by_key(|n| (*n != "INBOX", *n));
        for name in candidates {
            if !matches(name) {
                continue;
            }
            let mailbox = by_name.get(name).copied();
            let subscribed = subscriptions.contains(name);
            let prefix = format!("{name}/");
            // A subscribed descendant the pattern does not reach itself.
            let subscribed_below = || {
                subscriptions
                    .range::<str, _>((std::ops::Bound::Excluded(name), std::ops::Bound::Unbounded))
                    .take_while(|s| s.starts_with(&prefix) || s.as_str() < prefix.as_str())
                    .any(|s| s.starts_with(&prefix) && !matches(s))
            };
            let mut child_info = false;
            if by_subscription && !subscribed {
                // RFC 3501 §6.3.9: LSUB answers an unsubscribed parent of a
                // subscribed name as \Noselect; LIST only with RECURSIVEMATCH.
                if !(options.lsub || options.recursive_match) || !subscribed_below() {
                    continue;
                }
                child_info = true;
            } else if options.subscribed_only && options.recursive_match {
                child_info = subscribed_below();
            }
            if options.special_use_only && role_attribute(mailbox.and_then(|m| m.role)).is_none() {
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            if options.lsub {
                if mailbox.is_none() && subscribed {
                    attrs.push("\\NonExistent");
                } else if !subscribed {
                    attrs.push("\\Noselect");
                }
            } else {
                match mailbox {
                    Some(m) => {
                        let has_children = mailboxes.iter().any(|c| c.name.starts_with(&prefix));
                        attrs.push(if has_children {
                            "\\HasChildren"
                        } else {
                            "\\HasNoChildren"
                        });
                        if let Some(a) = role_attribute(m.role) {
                            attrs.push(a);
                        }
                    }
                    // RFC 5258 §3: \NonExistent implies \Noselect.
                    None => attrs.push("\\NonExistent"),
                }
                if subscribed && (options.subscribed_only || options.return_subscribed) {
                    attrs.push("\\Subscribed");
                }
            }
            let verb_line = format!("* {verb} ({}) \"/\" ", attrs.join(" "));
            out.extend_from_slice(verb_line.as_bytes());
            self.external_name(&mut out, name);
            if child_info && !options.lsub {
                // RFC 5258 §3.5: the parent is returned for its children.
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out.extend_from_slice(b"\r\n");
            if let (Some(items), Some(m)) = (&options.return_status, mailbox) {
                match self.core.mailbox_status(self.access(), m.id).await {
                    Ok((mailbox, status)) => self.write_status(&mut out, &mailbox, &status, items),
                    Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
                }
            }
        }
        out.extend(ok(tag, &format!("{verb} completed")));
        Reply::new(out, Next::Command)
    }

    pub(super) fn write_status(
        &self,
        out: &mut Vec<u8>,
        mailbox: &Mailbox,
        status: &rampart_core::model::MailboxStatus,
        items: &[StatusItem],
    ) {
        out.extend_from_slice(b"* STATUS ");
        self.external_name(out, &mailbox.name);
        let values: Vec<String> = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => format!("MESSAGES {}", status.messages),
                StatusItem::Recent => format!("RECENT {}", status.recent),
                StatusItem::UidNext => format!("UIDNEXT {}", mailbox.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", mailbox.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", status.unseen),
                StatusItem::Deleted => format!("DELETED {}", status.deleted),
                StatusItem::Size => format!("SIZE {}", status.size),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", mailbox.highest_modseq),
                StatusItem::AppendLimit => {
                    format!("APPENDLIMIT {}", self.config.frame.max_append_bytes)
                }
                StatusItem::MailboxId => {
                    format!("MAILBOXID ({})", mailbox_id(&self.core, mailbox.id))
                }
            })
            .collect();
        out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
    }

    pub(super) async fn status(&mut self, tag: &str, name: &str, items: &[StatusItem]) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        if items.contains(&StatusItem::HighestModSeq) {
            self.condstore = true;
        }
        let result = match self.find(&name).await {
            Ok(m) => self.core.mailbox_status(self.access(), m.id).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((mailbox, status)) => {
                let mut out = Vec::new();
                self.write_status(&mut out, &mailbox, &status, items);
                out.extend(ok(tag, "Status completed"));
                Reply::new(out, Next::Command)
            }
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    pub(super) async fn append(
        &mut self,
        tag: &str,
        name: &str,
        flags: &[String],
        date: Option<i64>,
        message: Vec<u8>,
    ) -> Reply {
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let (system, keywords) = match parse_flags(flags) {
            Ok(f) => f,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        if message.is_empty() {
            return Reply::new(
                no(tag, "[CANNOT] An empty message cannot be appended"),
                Next::Command,
            );
        }
        let mailbox = match self.find(&name).await {
            Ok(m) => m,
            Err(CoreError::NotFound { .. }) => {
                return Reply::new(no(tag, "[TRYCREATE] No such mailbox"), Next::Command);
            }
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        // RFC 9051 §4.3: no literal may carry NUL, so binary parts (from a
        // literal8 APPEND, RFC 3516) are kept in base64; BINARY[] decodes them.
        let message = mime::encode_binary_parts(&message).unwrap_or(message);
        match self
            .core
            .append(self.access(), mailbox.id, message, system, keywords, date)
            .await
        {
            Ok(a) => Reply::new(
                ok(
                    tag,
                    &format!(
                        "[APPENDUID {} {}] Append completed",
                        mailbox.uid_validity, a.uid
                    ),
                ),
                Next::Command,
            ),
            Err(CoreError::Limit { what, limit, key }) => Reply::new(
                no(
                    tag,
                    &format!("[TOOBIG] {what} exceeds the limit of {limit} ({key})"),
                ),
                Next::Command,
            ),
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }

    pub(super) async fn quota(
        &mut self,
        tag: &str,
        root: Option<&str>,
        mailbox: Option<&str>,
    ) -> Reply {
        if let Some(root) = root
            && !root.is_empty()
        {
            return Reply::new(no(tag, "[NONEXISTENT] No such quota root"), Next::Command);
        }
        let mut out = Vec::new();
        if let Some(name) = mailbox {
            let name = match self.internal_name(name) {
                Ok(n) => n,
                Err(e) => return Reply::new(bad(tag, &e), Next::Command),
            };
            if let Err(e) = self.find(&name).await {
                return Reply::new(core_no(tag, &e), Next::Command);
            }
            out.extend_from_slice(b"* QUOTAROOT ");
            self.external_name(&mut out, &name);
            out.extend_from_slice(b" \"\"\r\n");
        }
        match self.core.quota(self.access()).await {
            Ok((used, limit)) => {
                if limit == 0 {
                    out.extend_from_slice(b"* QUOTA \"\" ()\r\n");
                } else {
                    out.extend_from_slice(
                        format!(
                            "* QUOTA \"\" (STORAGE {} {})\r\n",
                            used.div_ceil(1024),
                            limit / 1024
                        )
                        .as_bytes(),
                    );
                }
                out.extend(ok(tag, "Quota completed"));
                Reply::new(out, Next::Command)
            }
            Err(e) => Reply::new(core_no(tag, &e), Next::Command),
        }
    }
}

pub(super) fn role_attribute(role: Option<MailboxRole>) -> Option<&'static str> {
    match role? {
        MailboxRole::Inbox => None,
        MailboxRole::Sent => Some("\\Sent"),
        MailboxRole::Drafts => Some("\\Drafts"),
        MailboxRole::Trash => Some("\\Trash"),
        MailboxRole::Junk => Some("\\Junk"),
        MailboxRole::Archive => Some("\\Archive"),
    }
}

/// `*` matches anything, `%` anything but the hierarchy delimiter.
pub(super) fn pattern_matches(pattern: &[char], name: &[char]) -> bool {
    let m = name.len();
    // reachable[j]: the pattern prefix so far matches name[..j].
    let mut reachable = vec![false; m + 1];
    reachable[0] = true;
    for &p in pattern {
        let mut next = vec![false; m + 1];
        match p {
            '*' | '%' => {
                let mut on = false;
                for j in 0..=m {
                    if reachable[j] {
                        on = true;
                    }
                    next[j] = on;
                    // `%` does not reach across a delimiter.
                    if p == '%' && j < m && name[j] == '/' {
                        on = false;
                    }
                }
            }
            c => {
                for j in 0..m {
                    next[j + 1] = reachable[j] && name[j] == c;
                }
            }
        }
        reachable = next;
    }
    reachable[m]
}
