use super::*;

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SequenceSet,
        unchanged_since: Option<u64>,
        mode: StoreMode,
        silent: bool,
        flags: &[String],
    ) -> Reply {
        let mut out = Vec::new();
        if unchanged_since.is_some() {
            self.enable_condstore(&mut out);
        }
        let (system, keywords) = match parse_flags(flags) {
            Ok(f) => f,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        if sel.read_only {
            return Reply::new(no(tag, "[READ-ONLY] Mailbox is read-only"), Next::Command);
        }
        let indices = match sel.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let (eligible, modified): (Vec<usize>, Vec<usize>) = indices
            .into_iter()
            .filter(|&i| !sel.msgs[i].expunged)
            .partition(|&i| unchanged_since.is_none_or(|us| sel.msgs[i].modseq <= us));
        let uids: Vec<u32> = eligible.iter().map(|&i| sel.msgs[i].uid).collect();
        let modified: Vec<u32> = modified
            .iter()
            .map(|&i| if uid { sel.msgs[i].uid } else { i as u32 + 1 })
            .collect();
        let change = match mode {
            StoreMode::Replace => FlagChange::Set(system, keywords),
            StoreMode::Add => FlagChange::Add(system, keywords),
            StoreMode::Remove => FlagChange::Remove(system, keywords),
        };
        let id = sel.id;
        let changed = match self
            .core
            .set_flags(self.access(), id, &uids, change.clone())
            .await
        {
            Ok(c) => c,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let condstore = self.condstore;
        let Some(sel) = self.selected.as_mut() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        for &(u, modseq) in &changed {
            if let Some(i) = sel.index_of_uid(u) {
                let m = &mut sel.msgs[i];
                let (f, k) = change.apply(m.flags, &m.keywords);
                m.flags = f;
                m.keywords = k;
                m.modseq = modseq;
            }
        }
        if let FlagChange::Add(_, k) | FlagChange::Set(_, k) = &change {
            sel.announce_keywords(&mut out, k);
        }
        // A set, so that the loop below stays linear in the messages named.
        let changed: std::collections::HashSet<u32> = changed.iter().map(|&(u, _)| u).collect();
        for &i in &eligible {
            let m = &sel.msgs[i];
            let was_changed = changed.contains(&m.uid);
            if silent && !(condstore && was_changed) {
                continue;
            }
            let mut parts = Vec::new();
            if uid {
                parts.push(format!("UID {}", m.uid));
            }
            if !silent {
                parts.push(format!("FLAGS {}", m.flag_list()));
            }
            if condstore {
                parts.push(format!("MODSEQ ({})", m.modseq));
            }
            out.extend_from_slice(
                format!("* {} FETCH ({})\r\n", i + 1, parts.join(" ")).as_bytes(),
            );
        }
        if modified.is_empty() {
            out.extend(ok(tag, "Store completed"));
        } else {
            out.extend(ok(
                tag,
                &format!(
                    "[MODIFIED {}] Conditional store failed",
                    compact_set(&modified)
                ),
            ));
        }
        Reply::new(out, Next::Command)
    }

    pub(super) async fn copy(
        &mut self,
        tag: &str,
        uid: bool,
        remove: bool,
        set: &SequenceSet,
        target: &str,
    ) -> Reply {
        let target = match self.internal_name(target) {
            Ok(n) => n,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        if remove && sel.read_only {
            return Reply::new(no(tag, "[READ-ONLY] Mailbox is read-only"), Next::Command);
        }
        let indices = match sel.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        let uids: Vec<u32> = indices
            .iter()
            .filter(|&&i| !sel.msgs[i].expunged)
            .map(|&i| sel.msgs[i].uid)
            .collect();
        let source = sel.id;
        let target = match self.find(&target).await {
            Ok(m) => m,
            Err(CoreError::NotFound { .. }) => {
                return Reply::new(no(tag, "[TRYCREATE] No such mailbox"), Next::Command);
            }
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        if uids.is_empty() {
            return Reply::new(ok(tag, "No messages"), Next::Command);
        }
        let pairs = match self
            .core
            .copy_messages(self.access(), source, &uids, target.id, remove)
            .await
        {
            Ok(p) => p,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let from: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let to: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        let code = format!(
            "[COPYUID {} {} {}]",
            target.uid_validity,
            compact_set(&from),
            compact_set(&to)
        );
        if !remove {
            return Reply::new(ok(tag, &format!("{code} Copy completed")), Next::Command);
        }
        let mut out = format!("* OK {code} Moved\r\n").into_bytes();
        let qresync = self.qresync;
        if let Some(sel) = self.selected.as_mut() {
            write_expunges(&mut out, sel, &from, qresync);
        }
        out.extend(ok(tag, "Move completed"));
        Reply::new(out, Next::Command)
    }
}

/// Splits IMAP flags into system flags and keywords; `\Recent` is ignored.
pub(super) fn parse_flags(flags: &[String]) -> Result<(SystemFlags, Vec<String>), String> {
    let mut system = 0;
    let mut keywords = Vec::new();
    for f in flags {
        if let Some(name) = f.strip_prefix('\\') {
            system |= match name.to_ascii_lowercase().as_str() {
                "seen" => SystemFlags::SEEN,
                "answered" => SystemFlags::ANSWERED,
                "flagged" => SystemFlags::FLAGGED,
                "deleted" => SystemFlags::DELETED,
                "draft" => SystemFlags::DRAFT,
                "recent" => 0,
                _ => return Err(format!("Unknown system flag {f}")),
            };
        } else {
            if f.is_empty()
                || f.len() > 128
                || f.bytes()
                    .any(|b| b <= b' ' || b >= 0x7f || b"(){%*\"\\]".contains(&b))
            {
                return Err(format!("Invalid keyword {f:?}"));
            }
            if !keywords.iter().any(|k: &String| k.eq_ignore_ascii_case(f)) {
                keywords.push(f.clone());
            }
        }
    }
    Ok((SystemFlags(system), keywords))
}
