use super::*;
use crate::{mime, thread};

impl Session {
    /// Runs a search over the selected mailbox; returns matching indices.
    pub(super) async fn run_search(&mut self, key: &SearchKey) -> Result<Vec<usize>, CoreError> {
        let access = self.access().clone();
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Vec::new());
        };
        let scope = Scope {
            max_seq: sel.msgs.len() as u32,
            max_uid: sel.max_uid(),
            now: rampart_core::model::now_millis(),
        };
        let id = sel.id;
        let key = &search::with_saved(key.clone(), &sel.saved);
        // The full-text index answers text keys where it can, so that
        // only the messages it does not cover are read.
        let mut lookups = Vec::new();
        search::text_lookups(key, &mut lookups);
        let mut answers = HashMap::new();
        for (field, needle) in lookups {
            if let Some(found) = self.core.search_text(&access, id, field, &needle).await? {
                answers.insert((field, needle), found);
            }
        }
        let key = &search::apply_index(key.clone(), &answers);
        let needs = search::needs(key);
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Vec::new());
        };
        let live: Vec<usize> = (0..sel.msgs.len())
            .filter(|&i| !sel.msgs[i].expunged && search::may_match(key, sel.msgs[i].uid, scope))
            .collect();
        let mut hits = Vec::new();
        let batch = self.config.fetch_batch.max(1);
        for chunk in live.chunks(batch) {
            let sel = self
                .selected
                .as_ref()
                .ok_or(CoreError::Invalid("deselected".into()))?;
            let uids: Vec<u32> = chunk.iter().map(|&i| sel.msgs[i].uid).collect();
            // Every search is recorded with the messages it examined.
            let records = self
                .core
                .fetch_messages(&access, id, &uids, MessageRead::Search { text: needs.text })
                .await?;
            let by_uid: HashMap<u32, &(MessageRecord, Option<Vec<u8>>)> =
                records.iter().map(|r| (r.0.uid, r)).collect();
            for &i in chunk {
                let m = &sel.msgs[i];
                let Some((record, raw)) = by_uid.get(&m.uid) else {
                    continue;
                };
                let summary: Option<MessageSummary> = needs
                    .summary
                    .then(|| serde_json_summary(&record.summary))
                    .flatten();
                let text = raw.as_deref().map(rampart_core::SearchableText::new);
                let (eid, tid) = (
                    email_id(&self.core, m.message),
                    thread_id(&self.core, m.thread),
                );
                let c = Candidate {
                    seq: i as u32 + 1,
                    uid: m.uid,
                    flags: m.flags,
                    recent: m.recent,
                    keywords: &m.keywords,
                    modseq: m.modseq,
                    size: m.size,
                    received_at: m.received_at,
                    email_id: &eid,
                    thread_id: &tid,
                    summary: summary.as_ref(),
                    text: text.as_ref(),
                };
                if search::matches(key, &c, scope) {
                    hits.push(i);
                }
            }
        }
        Ok(hits)
    }

    pub(super) async fn search(
        &mut self,
        tag: &str,
        uid: bool,
        ret: Option<SearchReturn>,
        key: &SearchKey,
    ) -> Reply {
        let mut out = Vec::new();
        if search::uses_modseq(key) {
            self.enable_condstore(&mut out);
        }
        let saving = ret.as_ref().is_some_and(|r| r.save);
        let hits = match self.run_search(key).await {
            Ok(h) => h,
            Err(e) => {
                // RFC 5182 §2.1: a failed SAVE leaves `$` empty.
                if saving && let Some(sel) = self.selected.as_mut() {
                    sel.saved.clear();
                }
                return Reply::new(core_no(tag, &e), Next::Command);
            }
        };
        if let (Some(r), Some(sel)) = (ret.as_ref().filter(|r| r.save), self.selected.as_mut()) {
            // With only MIN and/or MAX, what is saved is what they return.
            let kept: Vec<usize> = if (r.min || r.max) && !r.all && !r.count {
                let mut ends: Vec<usize> =
                    [r.min.then(|| hits.first()), r.max.then(|| hits.last())]
                        .into_iter()
                        .flatten()
                        .flatten()
                        .copied()
                        .collect();
                ends.dedup();
                ends
            } else {
                hits.clone()
            };
            sel.saved = kept.iter().map(|&i| sel.msgs[i].uid).collect();
        }
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let only_save = ret
            .as_ref()
            .is_some_and(|r| r.save && !r.min && !r.max && !r.all && !r.count);
        if only_save {
            // RFC 5182 §2.1: SAVE alone answers no ESEARCH.
            out.extend(ok(tag, "Search completed, result saved"));
            return Reply::new(out, Next::Command);
        }
        let nums: Vec<u32> = hits
            .iter()
            .map(|&i| if uid { sel.msgs[i].uid } else { i as u32 + 1 })
            .collect();
        let highest = hits.iter().map(|&i| sel.msgs[i].modseq).max();
        let esearch = ret.or(self.utf8.then_some(SearchReturn {
            all: true,
            ..Default::default()
        }));
        match esearch {
            Some(r) => {
                let mut line = format!("* ESEARCH (TAG \"{tag}\")");
                if uid {
                    line.push_str(" UID");
                }
                if !nums.is_empty() {
                    if r.min {
                        line.push_str(&format!(" MIN {}", nums[0]));
                    }
                    if r.max {
                        line.push_str(&format!(" MAX {}", nums[nums.len() - 1]));
                    }
                    if r.all {
                        line.push_str(&format!(" ALL {}", compact_set(&nums)));
                    }
                }
                if r.count {
                    line.push_str(&format!(" COUNT {}", nums.len()));
                }
                // RFC 7162 §3.1.5: with only MIN and/or MAX, MODSEQ is that
                // of the message(s) returned, not of all that matched.
                let reported = if (r.min || r.max) && !r.all && !r.count {
                    let ends = [
                        r.min.then(|| hits.first()).flatten(),
                        r.max.then(|| hits.last()).flatten(),
                    ];
                    ends.into_iter()
                        .flatten()
                        .map(|&i| sel.msgs[i].modseq)
                        .max()
                } else {
                    highest
                };
                if let Some(h) = reported.filter(|_| search::uses_modseq(key)) {
                    line.push_str(&format!(" MODSEQ {h}"));
                }
                line.push_str("\r\n");
                out.extend_from_slice(line.as_bytes());
            }
            None => {
                let mut line = String::from("* SEARCH");
                for n in &nums {
                    line.push_str(&format!(" {n}"));
                }
                if let Some(h) = highest.filter(|_| search::uses_modseq(key)) {
                    line.push_str(&format!(" (MODSEQ {h})"));
                }
                line.push_str("\r\n");
                out.extend_from_slice(line.as_bytes());
            }
        }
        out.extend(ok(tag, "Search completed"));
        Reply::new(out, Next::Command)
    }

    /// The matching indices with their summaries, for SORT and THREAD.
    pub(super) async fn search_with_summaries(
        &mut self,
        key: &SearchKey,
    ) -> Result<(Vec<usize>, HashMap<u32, MessageSummary>), CoreError> {
        let hits = self.run_search(key).await?;
        let summaries = self.summaries(&hits).await?;
        Ok((hits, summaries))
    }

    /// Summaries of the given indices, for SORT and THREAD.
    pub(super) async fn summaries(
        &self,
        indices: &[usize],
    ) -> Result<HashMap<u32, MessageSummary>, CoreError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(HashMap::new());
        };
        let mut out = HashMap::new();
        for chunk in indices.chunks(self.config.fetch_batch.max(1) * 8) {
            let uids: Vec<u32> = chunk.iter().map(|&i| sel.msgs[i].uid).collect();
            for (record, _) in self
                .core
                .fetch_messages(self.access(), sel.id, &uids, MessageRead::Summary)
                .await?
            {
                out.insert(
                    record.uid,
                    serde_json_summary(&record.summary).unwrap_or_default(),
                );
            }
        }
        Ok(out)
    }

    /// The top-level header of each message, by UID: the one kept with its
    /// structure where there is one, else read from the message.
    pub(super) async fn headers(
        &self,
        indices: &[usize],
    ) -> Result<HashMap<u32, Vec<u8>>, CoreError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(HashMap::new());
        };
        let (id, access) = (sel.id, self.access());
        let mut out = HashMap::with_capacity(indices.len());
        for chunk in indices.chunks(self.config.fetch_batch.max(1) * 8) {
            let uids: Vec<u32> = chunk.iter().map(|&i| sel.msgs[i].uid).collect();
            let mut unkept = Vec::new();
            for d in self
                .core
                .fetch_derived(access, id, &uids, STRUCTURE_KIND)
                .await?
            {
                let uid = d.record.uid;
                match d.derived.as_deref().and_then(Structure::decode) {
                    Some(Structure {
                        header: Some(h), ..
                    }) => {
                        out.insert(uid, h);
                    }
                    _ => match d.raw {
                        Some(raw) => {
                            out.insert(uid, header_part(&raw).to_vec());
                        }
                        None => unkept.push(uid),
                    },
                }
            }
            if !unkept.is_empty() {
                for (record, raw) in self
                    .core
                    .fetch_messages(access, id, &unkept, MessageRead::Header)
                    .await?
                {
                    if let Some(raw) = raw {
                        out.insert(record.uid, header_part(&raw).to_vec());
                    }
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn sort(
        &mut self,
        tag: &str,
        uid: bool,
        criteria: &[(bool, SortKey)],
        key: &SearchKey,
    ) -> Reply {
        let (hits, summaries) = match self.search_with_summaries(key).await {
            Ok(x) => x,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let by_address = criteria
            .iter()
            .any(|(_, k)| matches!(k, SortKey::From | SortKey::To | SortKey::Cc));
        let headers = if by_address {
            match self.headers(&hits).await {
                Ok(h) => h,
                Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
            }
        } else {
            HashMap::new()
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let empty = MessageSummary::default();
        // Each key is worked out once per message, not per comparison.
        let keys: Vec<SortKeys> = hits
            .iter()
            .map(|&i| {
                let m = &sel.msgs[i];
                let s = summaries.get(&m.uid).unwrap_or(&empty);
                let header = headers.get(&m.uid).map(|h| Mime::parse_top(h));
                // RFC 5256 §3: the addr-mailbox of the first address,
                // compared with i;ascii-casemap.
                let mailbox = |name: &str| {
                    let value = header
                        .as_ref()
                        .and_then(|h| h.field(&h.root, name))
                        .unwrap_or_default();
                    crate::subject::casemap(&mime::first_mailbox(&String::from_utf8_lossy(&value)))
                };
                SortKeys {
                    subject: crate::subject::base_subject(s.subject.as_deref().unwrap_or("")),
                    date: s.date.unwrap_or(m.received_at / 1000),
                    from: if by_address {
                        mailbox("From")
                    } else {
                        String::new()
                    },
                    to: if by_address {
                        mailbox("To")
                    } else {
                        String::new()
                    },
                    cc: if by_address {
                        mailbox("Cc")
                    } else {
                        String::new()
                    },
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..hits.len()).collect();
        order.sort_by(|&a, &b| {
            let (ma, mb) = (&sel.msgs[hits[a]], &sel.msgs[hits[b]]);
            let (ka, kb) = (&keys[a], &keys[b]);
            for &(reverse, k) in criteria {
                let ord = match k {
                    SortKey::Arrival => ma.received_at.cmp(&mb.received_at),
                    SortKey::Size => ma.size.cmp(&mb.size),
                    SortKey::Date => ka.date.cmp(&kb.date),
                    SortKey::Subject => ka.subject.cmp(&kb.subject),
                    SortKey::From => ka.from.cmp(&kb.from),
                    SortKey::To => ka.to.cmp(&kb.to),
                    SortKey::Cc => ka.cc.cmp(&kb.cc),
                };
                let ord = if reverse { ord.reverse() } else { ord };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            // RFC 5256 §3: ties keep mailbox order, REVERSE or not.
            hits[a].cmp(&hits[b])
        });
        let mut line = String::from("* SORT");
        for o in order {
            let i = hits[o];
            let n = if uid { sel.msgs[i].uid } else { i as u32 + 1 };
            line.push_str(&format!(" {n}"));
        }
        line.push_str("\r\n");
        let mut out = line.into_bytes();
        out.extend(ok(tag, "Sort completed"));
        Reply::new(out, Next::Command)
    }

    /// THREAD (RFC 5256): the threads of the messages that match.
    pub(super) async fn thread(
        &mut self,
        tag: &str,
        uid: bool,
        algorithm: ThreadAlgorithm,
        key: &SearchKey,
    ) -> Reply {
        let (hits, summaries) = match self.search_with_summaries(key).await {
            Ok(x) => x,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let headers = match algorithm {
            ThreadAlgorithm::References => match self.headers(&hits).await {
                Ok(h) => h,
                Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
            },
            ThreadAlgorithm::OrderedSubject => HashMap::new(),
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let empty = MessageSummary::default();
        let messages: Vec<thread::ThreadMessage> = hits
            .iter()
            .map(|&i| {
                let m = &sel.msgs[i];
                let s = summaries.get(&m.uid).unwrap_or(&empty);
                let header = headers.get(&m.uid).map(|h| Mime::parse_top(h));
                let field = |name: &str| {
                    header
                        .as_ref()
                        .and_then(|h| h.field(&h.root, name))
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                };
                thread::ThreadMessage {
                    id: if uid { m.uid } else { i as u32 + 1 },
                    message_id: s.message_id.clone(),
                    in_reply_to: field("In-Reply-To"),
                    references: field("References"),
                    subject: s.subject.clone().unwrap_or_default(),
                    date: s.date.unwrap_or(m.received_at / 1000),
                }
            })
            .collect();
        let threads = match algorithm {
            ThreadAlgorithm::References => thread::references(&messages),
            ThreadAlgorithm::OrderedSubject => thread::ordered_subject(&messages),
        };
        let list = thread::render(&threads);
        let mut out = Vec::with_capacity(list.len() + 64);
        out.extend_from_slice(b"* THREAD");
        if !list.is_empty() {
            out.push(b' ');
            out.extend_from_slice(list.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend(ok(tag, "Thread completed"));
        Reply::new(out, Next::Command)
    }
}

/// The SORT keys of one message (RFC 5256 §3).
struct SortKeys {
    subject: String,
    date: i64,
    from: String,
    to: String,
    cc: String,
}

/// The header of a message, up to and with the blank line that ends it.
fn header_part(raw: &[u8]) -> &[u8] {
    let (len, blank) = rampart_core::header::header_end(raw);
    &raw[..len + blank]
}
