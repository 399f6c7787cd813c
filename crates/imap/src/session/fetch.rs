use super::*;

impl Session {
    pub(super) async fn start_fetch(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SequenceSet,
        atts: Vec<FetchAtt>,
        changed_since: Option<u64>,
        vanished: bool,
    ) -> Reply {
        if vanished && !self.qresync {
            return Reply::new(bad(tag, "Enable QRESYNC first"), Next::Command);
        }
        let Some(sel) = self.selected.as_ref() else {
            return Reply::new(bad(tag, "Select a mailbox first"), Next::Command);
        };
        let mut indices = match sel.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => return Reply::new(bad(tag, &e), Next::Command),
        };
        indices.retain(|&i| !sel.msgs[i].expunged);
        let mut out = Vec::new();
        if changed_since.is_some() || atts.contains(&FetchAtt::ModSeq) {
            self.enable_condstore(&mut out);
        }
        let sel = self.selected.as_ref().expect("selected above");
        if let Some(cs) = changed_since {
            indices.retain(|&i| sel.msgs[i].modseq > cs);
            if vanished {
                let (id, max_uid) = (sel.id, sel.max_uid());
                match self.core.changes_since(self.access(), id, cs).await {
                    Ok((_, changes)) => {
                        let sel = self.selected.as_ref().expect("selected above");
                        let mut gone: Vec<u32> = changes
                            .iter()
                            .filter(|c| c.kind == ChangeKind::Expunged)
                            .map(|c| c.uid)
                            .filter(|&u| set.contains(u, max_uid) && sel.index_of_uid(u).is_none())
                            .collect();
                        gone.sort_unstable();
                        gone.dedup();
                        if !gone.is_empty() {
                            out.extend_from_slice(
                                format!("* VANISHED (EARLIER) {}\r\n", compact_set(&gone))
                                    .as_bytes(),
                            );
                        }
                    }
                    Err(e) => return Reply::new(core_no(tag, &e), Next::Command),
                }
            }
        }
        let sel = self.selected.as_ref().expect("selected above");
        let needs_raw = atts.iter().any(|a| {
            matches!(
                a,
                FetchAtt::Envelope
                    | FetchAtt::BodyStructure
                    | FetchAtt::Body
                    | FetchAtt::Section { .. }
                    | FetchAtt::BinarySize(_)
            )
        });
        let sets_seen = !sel.read_only
            && atts
                .iter()
                .any(|a| matches!(a, FetchAtt::Section { peek: false, .. }));
        let structure_only = needs_raw
            && atts.iter().all(|a| {
                is_header_section(a)
                    || !matches!(a, FetchAtt::Section { .. } | FetchAtt::BinarySize(_))
            });
        // What core returns decides what the ledger records: the state
        // alone, headers (kept structures, or headers read for the header
        // sections), or whole messages for anything else that needs one.
        let read = if !needs_raw {
            MessageRead::State
        } else if structure_only {
            MessageRead::Header
        } else {
            MessageRead::Body
        };
        let deep_mime = atts.iter().any(|a| match a {
            FetchAtt::BodyStructure | FetchAtt::Body | FetchAtt::BinarySize(_) => true,
            FetchAtt::Section { name, section, .. } => {
                *name == SectionName::Binary || !section.part.is_empty()
            }
            _ => false,
        });
        self.fetch = Some(FetchJob {
            tag: tag.into(),
            uid,
            atts,
            indices,
            next: 0,
            needs_raw,
            read,
            sets_seen,
            unknown_cte: false,
            deep_mime,
            structure_only,
        });
        let mut reply = self.more().await;
        reply.out.prepend(out);
        reply
    }

    /// The next part of a long response (FETCH in batches).
    pub async fn more(&mut self) -> Reply {
        let Some(mut job) = self.fetch.take() else {
            return Reply::new(Vec::new(), Next::Command);
        };
        let mut out = Output::default();
        // Whole messages go in small batches (memory); flags and kept
        // structures in larger ones (fewer round trips to the store).
        let batch = if job.needs_raw && !job.structure_only {
            self.config.fetch_batch.max(1)
        } else {
            self.config.fetch_batch.max(1) * 8
        };
        let end = (job.next + batch).min(job.indices.len());
        let chunk: Vec<usize> = job.indices[job.next..end].to_vec();
        job.next = end;
        if let Err(e) = self.fetch_batch(&mut job, &chunk, &mut out).await {
            out.extend(core_no(&job.tag, &e));
            return Reply::new(out, Next::Command);
        }
        if job.next < job.indices.len() {
            self.fetch = Some(job);
            return Reply::new(out, Next::More);
        }
        // Updates that arrived meanwhile (no EXPUNGE during FETCH) go
        // before the tagged completion.
        let mut updates = Vec::new();
        self.sync(&mut updates, job.uid).await;
        out.extend(updates);
        if job.unknown_cte {
            out.extend(no(
                &job.tag,
                "[UNKNOWN-CTE] A part has an unknown transfer encoding",
            ));
        } else {
            out.extend(ok(&job.tag, "Fetch completed"));
        }
        Reply::new(out, Next::Command)
    }

    pub(super) async fn fetch_batch(
        &mut self,
        job: &mut FetchJob,
        chunk: &[usize],
        out: &mut Output,
    ) -> Result<(), CoreError> {
        let access = self.access().clone();
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let id = sel.id;
        let uids: Vec<u32> = chunk.iter().map(|&i| sel.msgs[i].uid).collect();
        let mut structures: HashMap<u32, Structure> = HashMap::new();
        let records = if job.structure_only {
            // ENVELOPE and BODYSTRUCTURE come from what was computed before;
            // only messages never asked about are read and parsed.
            let derived = self
                .core
                .fetch_derived(&access, id, &uids, STRUCTURE_KIND)
                .await?;
            let mut remember = Vec::new();
            let mut records = Vec::with_capacity(derived.len());
            let mut unkept_headers = Vec::new();
            for d in derived {
                let (structure, raw) =
                    match (d.derived.as_deref().and_then(Structure::decode), d.raw) {
                        (Some(s), _) => (s, None),
                        (None, Some(raw)) => {
                            let s = Structure::compute(&raw);
                            remember.push((d.record.uid, s.encode()));
                            (s, Some(raw))
                        }
                        (None, None) => (Structure::default(), None),
                    };
                // Header sections are rendered from the kept header (a
                // message of its own: the same header, an empty body).
                let raw = raw.or_else(|| structure.header.clone());
                if raw.is_none() && job.atts.iter().any(is_header_section) {
                    unkept_headers.push(d.record.uid);
                }
                structures.insert(d.record.uid, structure);
                records.push((d.record, raw));
            }
            if !unkept_headers.is_empty() {
                // Headers too long to keep: read those messages.
                let mut whole: HashMap<u32, Option<Vec<u8>>> = self
                    .core
                    .fetch_messages(&access, id, &unkept_headers, MessageRead::Header)
                    .await?
                    .into_iter()
                    .map(|(r, raw)| (r.uid, raw))
                    .collect();
                for (record, raw) in &mut records {
                    if let Some(found) = whole.remove(&record.uid) {
                        *raw = found;
                    }
                }
            }
            if !remember.is_empty()
                && let Err(e) = self
                    .core
                    .remember(&access, id, STRUCTURE_KIND, remember)
                    .await
            {
                // Only a lost shortcut: the next FETCH computes it again.
                tracing::debug!(error = %e, "could not keep IMAP structures");
            }
            records
        } else {
            self.core
                .fetch_messages(&access, id, &uids, job.read)
                .await?
        };
        let mut flags_changed: Vec<u32> = Vec::new();
        if job.sets_seen {
            let unseen: Vec<u32> = records
                .iter()
                .filter(|(r, _)| !r.flags.contains(SystemFlags::SEEN))
                .map(|(r, _)| r.uid)
                .collect();
            if !unseen.is_empty() {
                let changed = self
                    .core
                    .set_flags(
                        &access,
                        id,
                        &unseen,
                        FlagChange::Add(SystemFlags(SystemFlags::SEEN), vec![]),
                    )
                    .await?;
                if let Some(sel) = self.selected.as_mut() {
                    for (uid, modseq) in changed {
                        if let Some(i) = sel.index_of_uid(uid) {
                            sel.msgs[i].flags.0 |= SystemFlags::SEEN;
                            sel.msgs[i].modseq = modseq;
                            flags_changed.push(uid);
                        }
                    }
                }
            }
        }
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        // The records are fresher than the view: take their flags, and say
        // so, announcing first any keyword the session has not seen.
        let fresher: Vec<&String> = records
            .iter()
            .filter(|(r, _)| {
                sel.index_of_uid(r.uid)
                    .is_some_and(|i| sel.msgs[i].modseq < r.modseq)
            })
            .flat_map(|(r, _)| &r.keywords)
            .collect();
        sel.announce_keywords(out, fresher);
        for (record, _) in &records {
            if let Some(i) = sel.index_of_uid(record.uid)
                && sel.msgs[i].modseq < record.modseq
            {
                let m = &mut sel.msgs[i];
                m.flags = record.flags;
                m.keywords = record.keywords.clone();
                m.modseq = record.modseq;
                flags_changed.push(record.uid);
            }
        }
        let sel = &*sel;
        // Shared, so that a body goes out from the buffer it was read into.
        let records: Vec<(MessageRecord, Option<Arc<Vec<u8>>>)> = records
            .into_iter()
            .map(|(record, raw)| (record, raw.map(Arc::new)))
            .collect();
        // Room for the lines (and small bodies) at once: growing a batch by
        // doubling copied it about twice more (seen as memmove in profiles).
        out.reserve(
            records
                .iter()
                .map(|(_, raw)| raw.as_ref().map_or(0, |r| r.len().min(2048)) + 256)
                .sum(),
        );
        for (record, raw) in &records {
            let Some(i) = sel.index_of_uid(record.uid) else {
                continue;
            };
            let m = &sel.msgs[i];
            // Parsed only when an item needs the structure (not for BODY[]).
            let parsed: std::cell::OnceCell<Option<Mime<'_>>> = std::cell::OnceCell::new();
            let mime = || {
                parsed
                    .get_or_init(|| {
                        raw.as_deref().map(|r| {
                            if job.deep_mime {
                                Mime::parse(r)
                            } else {
                                Mime::parse_top(r)
                            }
                        })
                    })
                    .as_ref()
            };
            out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
            let mut first = true;
            let mut sep = |out: &mut Vec<u8>| {
                if !first {
                    out.push(b' ');
                }
                first = false;
            };
            let mut wrote_flags = false;
            for att in &job.atts {
                sep(out);
                match att {
                    FetchAtt::Uid => out.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
                    FetchAtt::Flags => {
                        wrote_flags = true;
                        out.extend_from_slice(format!("FLAGS {}", m.flag_list()).as_bytes());
                    }
                    FetchAtt::InternalDate => out.extend_from_slice(
                        format!("INTERNALDATE {}", render::internal_date(m.received_at)).as_bytes(),
                    ),
                    FetchAtt::Rfc822Size => {
                        out.extend_from_slice(format!("RFC822.SIZE {}", m.size).as_bytes())
                    }
                    FetchAtt::ModSeq => {
                        out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes())
                    }
                    FetchAtt::EmailId => out.extend_from_slice(
                        format!("EMAILID ({})", email_id(&self.core, m.message)).as_bytes(),
                    ),
                    FetchAtt::ThreadId => out.extend_from_slice(
                        format!("THREADID ({})", thread_id(&self.core, m.thread)).as_bytes(),
                    ),
                    FetchAtt::Envelope => {
                        out.extend_from_slice(b"ENVELOPE ");
                        if let Some(st) = structures.get(&m.uid) {
                            out.extend_from_slice(&st.envelope);
                        } else if let Some(mm) = mime() {
                            render::envelope(out, mm, &mm.root);
                        }
                    }
                    FetchAtt::BodyStructure | FetchAtt::Body => {
                        let extended = *att == FetchAtt::BodyStructure;
                        out.extend_from_slice(if extended {
                            b"BODYSTRUCTURE "
                        } else {
                            b"BODY "
                        });
                        if let Some(st) = structures.get(&m.uid) {
                            out.extend_from_slice(if extended {
                                &st.body_structure
                            } else {
                                &st.body
                            });
                        } else if let Some(mm) = mime() {
                            render::body_structure(out, mm, &mm.root, extended);
                        }
                    }
                    FetchAtt::BinarySize(part) => {
                        let size = mime()
                            .and_then(|mm| mm.binary(part))
                            .map(|r| r.map(|b| b.len()));
                        match size {
                            Some(Ok(n)) => out.extend_from_slice(
                                format!("BINARY.SIZE[{}] {n}", join_parts(part)).as_bytes(),
                            ),
                            Some(Err(_)) => {
                                job.unknown_cte = true;
                                out.extend_from_slice(
                                    format!("BINARY.SIZE[{}] 0", join_parts(part)).as_bytes(),
                                );
                            }
                            None => out.extend_from_slice(
                                format!("BINARY.SIZE[{}] 0", join_parts(part)).as_bytes(),
                            ),
                        }
                    }
                    FetchAtt::Section {
                        name,
                        section,
                        partial,
                        ..
                    } => {
                        let Some(whole) = raw.as_ref() else {
                            continue;
                        };
                        let data: Option<Arc<Vec<u8>>> = if section.part.is_empty()
                            && section.text.is_none()
                            && *name != SectionName::Binary
                        {
                            Some(Arc::clone(whole))
                        } else if *name == SectionName::Binary {
                            let Some(mm) = mime() else { continue };
                            match mm.binary(&section.part) {
                                Some(Ok(d)) => Some(Arc::new(d)),
                                Some(Err(_)) => {
                                    job.unknown_cte = true;
                                    None
                                }
                                None => None,
                            }
                        } else {
                            mime().and_then(|mm| mm.section(section)).map(Arc::new)
                        };
                        out.extend_from_slice(section_label(*name, section, *partial).as_bytes());
                        out.push(b' ');
                        match data {
                            None => out.extend_from_slice(b"NIL"),
                            Some(d) => {
                                let range = match partial {
                                    Some((o, l)) => {
                                        let start = (*o as usize).min(d.len());
                                        start..start.saturating_add(*l as usize).min(d.len())
                                    }
                                    None => 0..d.len(),
                                };
                                let has_nul = memchr::memchr(0, &d[range.clone()]).is_some();
                                if *name == SectionName::Binary && has_nul {
                                    out.push(b'~');
                                    out.literal(&d, range);
                                } else if range.is_empty() {
                                    out.extend_from_slice(b"\"\"");
                                } else if has_nul {
                                    // RFC 9051 §4.3: a literal holds no NUL. A
                                    // message stored before APPEND re-encoded
                                    // binary parts may; as Dovecot, send 0x80.
                                    let clean: Vec<u8> = d[range]
                                        .iter()
                                        .map(|&b| if b == 0 { 0x80 } else { b })
                                        .collect();
                                    let len = clean.len();
                                    out.literal(&Arc::new(clean), 0..len);
                                } else {
                                    out.literal(&d, range);
                                }
                            }
                        }
                    }
                }
            }
            if flags_changed.contains(&m.uid) && !wrote_flags {
                sep(out);
                out.extend_from_slice(format!("FLAGS {}", m.flag_list()).as_bytes());
            }
            out.extend_from_slice(b")\r\n");
        }
        Ok(())
    }
}

/// Where the tagged completion of a reply starts: its last line, when that
/// is the tag's (a completed command's reply ends with it). Found from the
/// end: a FETCH's reply can hold megabytes of literals, whose lines must
/// neither be scanned nor taken for the tagged line.
pub(super) fn tagged_start(out: &[u8], tag: &str) -> usize {
    let body = out.strip_suffix(b"\r\n").unwrap_or(out);
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let line = &out[start..];
    if line.starts_with(tag.as_bytes()) && line.get(tag.len()) == Some(&b' ') {
        start
    } else {
        out.len()
    }
}

pub(super) fn join_parts(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

pub(super) fn section_label(
    name: SectionName,
    section: &Section,
    partial: Option<(u32, u32)>,
) -> String {
    let mut label = match name {
        SectionName::Rfc822 => return "RFC822".into(),
        SectionName::Rfc822Header => return "RFC822.HEADER".into(),
        SectionName::Rfc822Text => return "RFC822.TEXT".into(),
        SectionName::Body => String::from("BODY["),
        SectionName::Binary => String::from("BINARY["),
    };
    label.push_str(&join_parts(&section.part));
    if let Some(text) = &section.text {
        if !section.part.is_empty() {
            label.push('.');
        }
        match text {
            SectionText::Header => label.push_str("HEADER"),
            SectionText::Text => label.push_str("TEXT"),
            SectionText::Mime => label.push_str("MIME"),
            SectionText::HeaderFields(f) => {
                label.push_str(&format!("HEADER.FIELDS ({})", f.join(" ")))
            }
            SectionText::HeaderFieldsNot(f) => {
                label.push_str(&format!("HEADER.FIELDS.NOT ({})", f.join(" ")))
            }
        }
    }
    label.push(']');
    if let Some((o, _)) = partial {
        label.push_str(&format!("<{o}>"));
    }
    label
}

/// Whether a FETCH item is a section of the top-level header only.
pub(super) fn is_header_section(att: &FetchAtt) -> bool {
    matches!(
        att,
        FetchAtt::Section { name, section, .. }
            if *name != SectionName::Binary
                && section.part.is_empty()
                && matches!(
                    section.text,
                    Some(SectionText::Header)
                        | Some(SectionText::HeaderFields(_))
                        | Some(SectionText::HeaderFieldsNot(_))
                )
    )
}

/// A FETCH being answered in steps.
pub(super) struct FetchJob {
    tag: String,
    uid: bool,
    atts: Vec<FetchAtt>,
    indices: Vec<usize>,
    next: usize,
    needs_raw: bool,
    /// What the non-structure path asks core for.
    read: MessageRead,
    sets_seen: bool,
    unknown_cte: bool,
    /// Whether an item needs the parts below the top level.
    deep_mime: bool,
    /// Whether ENVELOPE, BODYSTRUCTURE, BODY and header sections are the
    /// only items that need the message: they are then served from
    /// [`Structure`]s kept in the store, without reading message files.
    structure_only: bool,
}

/// The kind under which a message's [`Structure`] is kept.
pub(super) const STRUCTURE_KIND: &str = "imap.structure.3";

/// Longest header section kept in a [`Structure`]; longer ones are read from
/// the message when asked for.
pub(super) const MAX_KEPT_HEADER: usize = 32 * 1024;

/// Computes a message's ENVELOPE and BODYSTRUCTURE when it is stored, so
/// that the first FETCH of them reads no message at all.
pub struct StructureDeriver;

impl rampart_core::Deriver for StructureDeriver {
    fn kind(&self) -> &str {
        STRUCTURE_KIND
    }

    fn derive(&self, raw: &[u8]) -> Vec<u8> {
        Structure::compute(raw).encode()
    }
}

/// A message's ENVELOPE, BODYSTRUCTURE and BODY as sent, and its header
/// section (what header FETCHes, the commonest, read), computed once.
#[derive(Debug, Default)]
pub(super) struct Structure {
    pub(super) envelope: Vec<u8>,
    pub(super) body_structure: Vec<u8>,
    pub(super) body: Vec<u8>,
    /// The top-level header with the blank line that ends it; None when
    /// longer than [`MAX_KEPT_HEADER`].
    pub(super) header: Option<Vec<u8>>,
}

impl Structure {
    pub(super) fn compute(raw: &[u8]) -> Self {
        let m = Mime::parse(raw);
        let mut s = Structure::default();
        render::envelope(&mut s.envelope, &m, &m.root);
        render::body_structure(&mut s.body_structure, &m, &m.root, true);
        render::body_structure(&mut s.body, &m, &m.root, false);
        let header = m.root.header.start..m.root.blank_line.end.max(m.root.header.end);
        s.header = (header.len() <= MAX_KEPT_HEADER).then(|| raw[header].to_vec());
        s
    }

    /// Four length-prefixed fields (the header's length is u32::MAX when it
    /// is not kept).
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for field in [&self.envelope, &self.body_structure, &self.body] {
            out.extend_from_slice(&(field.len() as u32).to_le_bytes());
            out.extend_from_slice(field);
        }
        match &self.header {
            Some(h) => {
                out.extend_from_slice(&(h.len() as u32).to_le_bytes());
                out.extend_from_slice(h);
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        out
    }

    pub(super) fn decode(mut bytes: &[u8]) -> Option<Self> {
        let mut fields = Vec::with_capacity(4);
        for _ in 0..4 {
            let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
            bytes = &bytes[4..];
            if len == u32::MAX {
                fields.push(None);
                continue;
            }
            let len = len as usize;
            fields.push(Some(bytes.get(..len)?.to_vec()));
            bytes = &bytes[len..];
        }
        let header = fields.pop()?;
        let body = fields.pop()??;
        let body_structure = fields.pop()??;
        let envelope = fields.pop()??;
        bytes.is_empty().then_some(Structure {
            envelope,
            body_structure,
            body,
            header,
        })
    }
}
