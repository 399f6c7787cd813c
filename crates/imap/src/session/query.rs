use super::*;

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
            now: rampart_core::store::now_millis(),
        };
        let id = sel.id;
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
                .fetch_messages(&access, id, &uids, needs.text, Operation::Search)
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
                let (eid, tid) = (email_id(m.message), thread_id(m.thread));
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
        let hits = match self.run_search(key).await {
            Ok(h) => h,
            Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
        };
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
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
                .fetch_messages(self.access(), sel.id, &uids, false, Operation::ReadHeader)
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
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let empty = MessageSummary::default();
        let first_mailbox = |list: &[rampart_core::AddressSummary]| {
            list.first()
                .and_then(|a| a.address.clone())
                .unwrap_or_default()
                .to_lowercase()
        };
        let mut sorted = hits.clone();
        sorted.sort_by(|&a, &b| {
            let (ma, mb) = (&sel.msgs[a], &sel.msgs[b]);
            let sa = summaries.get(&ma.uid).unwrap_or(&empty);
            let sb = summaries.get(&mb.uid).unwrap_or(&empty);
            for &(reverse, k) in criteria {
                let ord = match k {
                    SortKey::Arrival => ma.received_at.cmp(&mb.received_at),
                    SortKey::Size => ma.size.cmp(&mb.size),
                    SortKey::Date => sa
                        .date
                        .unwrap_or(ma.received_at / 1000)
                        .cmp(&sb.date.unwrap_or(mb.received_at / 1000)),
                    SortKey::Subject => search::base_subject(sa.subject.as_deref().unwrap_or(""))
                        .cmp(&search::base_subject(sb.subject.as_deref().unwrap_or(""))),
                    SortKey::From => first_mailbox(&sa.from).cmp(&first_mailbox(&sb.from)),
                    SortKey::To => first_mailbox(&sa.to).cmp(&first_mailbox(&sb.to)),
                    SortKey::Cc => first_mailbox(&sa.cc).cmp(&first_mailbox(&sb.cc)),
                };
                let ord = if reverse { ord.reverse() } else { ord };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            a.cmp(&b)
        });
        let mut line = String::from("* SORT");
        for i in sorted {
            let n = if uid { sel.msgs[i].uid } else { i as u32 + 1 };
            line.push_str(&format!(" {n}"));
        }
        line.push_str("\r\n");
        let mut out = line.into_bytes();
        out.extend(ok(tag, "Sort completed"));
        Reply::new(out, Next::Command)
    }

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
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let empty = MessageSummary::default();
        let date = |i: usize| {
            let m = &sel.msgs[i];
            summaries
                .get(&m.uid)
                .unwrap_or(&empty)
                .date
                .unwrap_or(m.received_at / 1000)
        };
        // Group: by base subject, or by the thread the store assigned from
        // References and In-Reply-To.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for &i in &hits {
            let k = match algorithm {
                ThreadAlgorithm::OrderedSubject => search::base_subject(
                    summaries
                        .get(&sel.msgs[i].uid)
                        .and_then(|s| s.subject.as_deref())
                        .unwrap_or(""),
                ),
                ThreadAlgorithm::References => sel.msgs[i].thread.to_string(),
            };
            let g = *index.entry(k.clone()).or_insert_with(|| {
                groups.push((k, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        for (_, members) in &mut groups {
            members.sort_by_key(|&i| (date(i), i));
        }
        groups.sort_by_key(|(_, members)| (date(members[0]), members[0]));
        let num = |i: usize| if uid { sel.msgs[i].uid } else { i as u32 + 1 };
        let mut line = String::from("* THREAD ");
        for (_, members) in &groups {
            line.push('(');
            line.push_str(&num(members[0]).to_string());
            match &members[1..] {
                [] => {}
                [one] => line.push_str(&format!(" {}", num(*one))),
                rest => {
                    line.push(' ');
                    for &c in rest {
                        line.push_str(&format!("({})", num(c)));
                    }
                }
            }
            line.push(')');
        }
        line.push_str("\r\n");
        let mut out = line.into_bytes();
        out.extend(ok(tag, "Thread completed"));
        Reply::new(out, Next::Command)
    }
}
