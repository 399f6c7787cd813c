use super::*;

impl Session {
    pub(super) async fn select(
        &mut self,
        tag: &str,
        name: &str,
        read_only: bool,
        condstore: bool,
        qresync: Option<Qresync>,
    ) -> Reply {
        let had_selected = self.selected.take().is_some();
        let mut out = Vec::new();
        if had_selected && (self.qresync || self.utf8) {
            out.extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        if qresync.is_some() && !self.qresync {
            out.extend(bad(tag, "Enable QRESYNC first"));
            return Reply::new(out, Next::Command);
        }
        if condstore {
            self.condstore = true;
        }
        let name = match self.internal_name(name) {
            Ok(n) => n,
            Err(e) => {
                out.extend(bad(tag, &e));
                return Reply::new(out, Next::Command);
            }
        };
        let listed = match self.find(&name).await {
            Ok(m) => self.core.list_items(self.access(), m.id).await,
            Err(e) => Err(e),
        };
        let (mailbox, records) = match listed {
            Ok(x) => x,
            Err(e) => {
                out.extend(core_no(tag, &e));
                return Reply::new(out, Next::Command);
            }
        };
        let msgs: Vec<Msg> = records.iter().map(Msg::from_record).collect();
        let mut selected = Selected {
            id: mailbox.id,
            read_only,
            msgs,
            modseq: mailbox.highest_modseq,
            expunged_pending: 0,
            keywords: Vec::new(),
            recent: Vec::new(),
            saved: Vec::new(),
        };
        add_keywords(
            &mut selected.keywords,
            selected.msgs.iter().flat_map(|m| &m.keywords),
        );
        if !self.utf8 {
            // RFC 3501 §2.3.2: SELECT takes the new messages as this
            // session's \Recent; EXAMINE only looks.
            if read_only {
                selected.recent.push((mailbox.recent_uid, u32::MAX));
            } else {
                match self.core.claim_recent(self.access(), mailbox.id).await {
                    Ok(range) => selected.recent.push(range),
                    Err(e) => tracing::warn!(error = %e, "claiming \\Recent failed"),
                }
            }
            selected.mark_recent();
        }
        selected.write_flags(&mut out);
        out.extend_from_slice(format!("* {} EXISTS\r\n", selected.msgs.len()).as_bytes());
        if !self.utf8 {
            out.extend_from_slice(format!("* {} RECENT\r\n", selected.recent_count()).as_bytes());
            if let Some(p) = selected
                .msgs
                .iter()
                .position(|m| !m.flags.contains(SystemFlags::SEEN))
            {
                out.extend_from_slice(
                    format!("* OK [UNSEEN {}] First unseen\r\n", p + 1).as_bytes(),
                );
            }
        }
        out.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n* OK [HIGHESTMODSEQ {}] Highest\r\n* OK [MAILBOXID ({})] Ok\r\n",
                mailbox.uid_validity,
                mailbox.uid_next,
                mailbox.highest_modseq,
                mailbox_id(&self.core, mailbox.id)
            )
            .as_bytes(),
        );
        if let Some(q) = qresync
            && q.uid_validity == mailbox.uid_validity
        {
            match self
                .core
                .changes_since(self.access(), mailbox.id, q.modseq)
                .await
            {
                Ok((_, changes)) => {
                    let mut vanished: Vec<u32> = changes
                        .iter()
                        .filter(|c| c.kind == ChangeKind::Expunged)
                        .map(|c| c.uid)
                        .filter(|&u| selected.index_of_uid(u).is_none())
                        .filter(|&u| {
                            q.known_uids
                                .as_ref()
                                .is_none_or(|k| k.contains(u, u32::MAX))
                        })
                        .collect();
                    vanished.sort_unstable();
                    vanished.dedup();
                    if !vanished.is_empty() {
                        out.extend_from_slice(
                            format!("* VANISHED (EARLIER) {}\r\n", compact_set(&vanished))
                                .as_bytes(),
                        );
                    }
                    for (i, m) in selected.msgs.iter().enumerate() {
                        if m.modseq > q.modseq {
                            out.extend_from_slice(
                                format!(
                                    "* {} FETCH (UID {} FLAGS {} MODSEQ ({}))\r\n",
                                    i + 1,
                                    m.uid,
                                    m.flag_list(),
                                    m.modseq
                                )
                                .as_bytes(),
                            );
                        }
                    }
                }
                Err(e) => {
                    out.extend(core_no(tag, &e));
                    return Reply::new(out, Next::Command);
                }
            }
        }
        self.selected = Some(selected);
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        out.extend(ok(tag, &format!("[{mode}] Select completed")));
        Reply::new(out, Next::Command)
    }

    /// Brings the selected view up to date, writing untagged updates.
    pub(super) async fn sync(&mut self, out: &mut Vec<u8>, allow_expunge: bool) {
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        // Only ask the store when this process announced a change to the
        // mailbox, or when the last look is old (another process, such as
        // the CLI, may have changed it).
        let mut dirty = self.force_sync || self.last_sync.elapsed() >= STALE_VIEW;
        loop {
            match self.changes.try_recv() {
                Ok(id) => dirty |= id == sel.id,
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => dirty = true,
                Err(_) => break,
            }
        }
        self.force_sync = false;
        if !dirty {
            if allow_expunge && let Some(sel) = self.selected.as_mut() {
                write_pending_expunges(out, sel, self.qresync);
            }
            return;
        }
        self.last_sync = std::time::Instant::now();
        let (id, since) = (sel.id, sel.modseq);
        let Some(access) = self.access.clone() else {
            return;
        };
        let (mailbox, changes) = match self.core.changes_since(&access, id, since).await {
            Ok(x) => x,
            Err(CoreError::NotFound { .. }) => {
                out.extend_from_slice(b"* BYE [NONEXISTENT] The selected mailbox was deleted\r\n");
                self.selected = None;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "IMAP update check failed");
                return;
            }
        };
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let mut new_uids = Vec::new();
        let mut flag_uids = Vec::new();
        let max_uid = sel.max_uid();
        for Change {
            uid, kind, modseq, ..
        } in &changes
        {
            match kind {
                ChangeKind::Created if *uid > max_uid => new_uids.push(*uid),
                ChangeKind::Created => {}
                ChangeKind::Flags => {
                    if let Some(i) = sel.index_of_uid(*uid)
                        && sel.msgs[i].modseq < *modseq
                    {
                        flag_uids.push(*uid);
                    }
                }
                ChangeKind::Expunged => {
                    if let Some(i) = sel.index_of_uid(*uid)
                        && !sel.msgs[i].expunged
                    {
                        sel.msgs[i].expunged = true;
                        sel.expunged_pending += 1;
                    }
                    new_uids.retain(|u| u != uid);
                }
            }
        }
        sel.modseq = sel.modseq.max(mailbox.highest_modseq);
        if allow_expunge {
            write_pending_expunges(out, sel, self.qresync);
        }
        flag_uids.sort_unstable();
        flag_uids.dedup();
        new_uids.sort_unstable();
        new_uids.dedup();
        let wanted: Vec<u32> = new_uids.iter().chain(&flag_uids).copied().collect();
        if wanted.is_empty() {
            return;
        }
        // New messages are this session's \Recent if no other took them.
        let claimed = if !new_uids.is_empty() && !self.utf8 && !sel.read_only {
            match self.core.claim_recent(&access, id).await {
                Ok(range) => Some(range),
                Err(e) => {
                    tracing::warn!(error = %e, "claiming \\Recent failed");
                    None
                }
            }
        } else {
            None
        };
        let records = match self
            .core
            .fetch_messages(&access, id, &wanted, MessageRead::State)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "IMAP update fetch failed");
                return;
            }
        };
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let before = sel.msgs.len();
        sel.announce_keywords(out, records.iter().flat_map(|(r, _)| &r.keywords));
        for (record, _) in &records {
            match sel.index_of_uid(record.uid) {
                Some(i) => {
                    let m = &mut sel.msgs[i];
                    if m.modseq < record.modseq {
                        m.flags = record.flags;
                        m.keywords = record.keywords.clone();
                        m.modseq = record.modseq;
                        let mut line =
                            format!("* {} FETCH (UID {} FLAGS {}", i + 1, m.uid, m.flag_list());
                        if self.condstore {
                            line.push_str(&format!(" MODSEQ ({})", m.modseq));
                        }
                        line.push_str(")\r\n");
                        out.extend_from_slice(line.as_bytes());
                    }
                }
                None if record.uid > sel.max_uid() => sel.msgs.push(Msg::from_record(record)),
                None => {}
            }
        }
        if sel.msgs.len() != before {
            if let Some(range) = claimed {
                sel.recent.push(range);
            }
            if !self.utf8 {
                sel.mark_recent();
            }
            out.extend_from_slice(format!("* {} EXISTS\r\n", sel.msgs.len()).as_bytes());
            if !self.utf8 {
                out.extend_from_slice(format!("* {} RECENT\r\n", sel.recent_count()).as_bytes());
            }
        }
    }

    pub(super) async fn core_remove(&self, id: MailboxId, uids: &[u32]) -> Result<u64, CoreError> {
        self.core.remove_messages(self.access(), id, uids).await
    }

    pub(super) async fn expunge(&mut self, tag: &str, set: Option<&SequenceSet>) -> Reply {
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        if sel.read_only {
            return Reply::new(no(tag, "[READ-ONLY] Mailbox is read-only"), Next::Command);
        }
        let in_set: Option<Vec<usize>> = match set.map(|s| sel.resolve(s, true)) {
            Some(Ok(i)) => Some(i),
            Some(Err(e)) => return Reply::new(bad(tag, &e), Next::Command),
            None => None,
        };
        let uids: Vec<u32> = sel
            .msgs
            .iter()
            .enumerate()
            .filter(|(i, m)| {
                m.flags.contains(SystemFlags::DELETED)
                    && !m.expunged
                    && in_set.as_ref().is_none_or(|s| s.binary_search(i).is_ok())
            })
            .map(|(_, m)| m.uid)
            .collect();
        let id = sel.id;
        let mut out = Vec::new();
        if !uids.is_empty() {
            match self.core_remove(id, &uids).await {
                Ok(modseq) => {
                    let qresync = self.qresync;
                    if let Some(sel) = self.selected.as_mut() {
                        write_expunges(&mut out, sel, &uids, qresync);
                        let _ = modseq;
                    }
                }
                Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
            }
        }
        out.extend(ok(tag, "Expunge completed"));
        Reply::new(out, Next::Command)
    }
}

/// Removes the messages with these UIDs from the view, writing EXPUNGE
/// (highest sequence number first, so that none shifts) or VANISHED.
pub(super) fn write_expunges(out: &mut Vec<u8>, sel: &mut Selected, uids: &[u32], qresync: bool) {
    let mut indices: Vec<usize> = uids.iter().filter_map(|&u| sel.index_of_uid(u)).collect();
    if indices.is_empty() {
        return;
    }
    indices.sort_unstable();
    if qresync {
        let mut gone: Vec<u32> = indices.iter().map(|&i| sel.msgs[i].uid).collect();
        gone.sort_unstable();
        out.extend_from_slice(format!("* VANISHED {}\r\n", compact_set(&gone)).as_bytes());
    } else {
        for &i in indices.iter().rev() {
            out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
        }
    }
    for &i in indices.iter().rev() {
        if sel.msgs[i].expunged {
            sel.expunged_pending -= 1;
        }
        sel.msgs.remove(i);
    }
}

/// Reports (and drops from the view) messages expunged elsewhere.
pub(super) fn write_pending_expunges(out: &mut Vec<u8>, sel: &mut Selected, qresync: bool) {
    if sel.expunged_pending == 0 {
        return;
    }
    let gone: Vec<u32> = sel
        .msgs
        .iter()
        .filter(|m| m.expunged)
        .map(|m| m.uid)
        .collect();
    write_expunges(out, sel, &gone, qresync);
}
