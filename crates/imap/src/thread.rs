//! The THREAD algorithms of RFC 5256: ORDEREDSUBJECT (§3) and REFERENCES
//! (§3, steps 1 to 6), as pure functions over the searched messages, and the
//! thread-list of the untagged THREAD response (§4).
//!
//! Trees are kept flat (nodes in a vector, children by index) and walked
//! without recursion, so a mailbox holding one very long reply chain cannot
//! exhaust the stack, neither while threading nor when the result is dropped.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::subject;

/// One message as the threading algorithms see it.
#[derive(Clone, Debug, Default)]
pub struct ThreadMessage {
    /// Sequence number or UID, printed as it is. Ids must order the messages
    /// as their sequence numbers do (UIDs do): they break ties in sent date
    /// and decide which of two equal Message-IDs counts (RFC 5256 §2.2, §3).
    pub id: u32,
    /// Message-ID, without the angle brackets.
    pub message_id: Option<String>,
    /// The In-Reply-To field's raw value.
    pub in_reply_to: Option<String>,
    /// The References field's raw value.
    pub references: Option<String>,
    /// The Subject, decoded.
    pub subject: String,
    /// Sent date in seconds: the Date field, else INTERNALDATE (RFC 5256 §2.2).
    pub date: i64,
}

/// One node of a thread: a message, or a dummy that stands for messages
/// gathered under no message of their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadNode {
    /// The message's id; `None` for a dummy.
    pub id: Option<u32>,
    /// Indices of the children in [`Thread::nodes`], oldest first.
    pub children: Vec<usize>,
}

/// One thread: a tree whose root is `nodes[0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thread {
    /// The nodes; each one's children come after it.
    pub nodes: Vec<ThreadNode>,
}

impl Thread {
    /// The ids of the thread's messages, parents before children.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.nodes.iter().filter_map(|n| n.id)
    }
}

/// The threads of RFC 5256 §3 ORDEREDSUBJECT: messages grouped by base
/// subject, each group's oldest message the parent of all the others, the
/// groups in the order of their oldest messages.
pub fn ordered_subject(msgs: &[ThreadMessage]) -> Vec<Thread> {
    let keys: Vec<String> = msgs
        .iter()
        .map(|m| subject::base_subject(&m.subject))
        .collect();
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    // "sorted by base subject and then by the sent date"
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]).then_with(|| sent(&msgs[a], &msgs[b])));
    let mut threads: Vec<(usize, Thread)> = Vec::new();
    for group in order.chunk_by(|&a, &b| keys[a] == keys[b]) {
        // "The second message of a thread is the child of the first message,
        // and subsequent messages of the thread are siblings of the second".
        let mut nodes = vec![ThreadNode {
            id: Some(msgs[group[0]].id),
            children: (1..group.len()).collect(),
        }];
        nodes.extend(group[1..].iter().map(|&i| ThreadNode {
            id: Some(msgs[i].id),
            children: Vec::new(),
        }));
        threads.push((group[0], Thread { nodes }));
    }
    // "the threads are sorted by the sent date of the first message"
    threads.sort_by(|(a, _), (b, _)| sent(&msgs[*a], &msgs[*b]));
    threads.into_iter().map(|(_, t)| t).collect()
}

/// RFC 5256 §2.2: by sent date, ties broken by sequence number.
fn sent(a: &ThreadMessage, b: &ThreadMessage) -> Ordering {
    (a.date, a.id).cmp(&(b.date, b.id))
}

/// A node while threading by references.
#[derive(Default)]
struct Node {
    /// Index of the message; `None` for a dummy.
    msg: Option<usize>,
    /// The parent, kept while linking (step 1) only: later steps move
    /// children between lists without it.
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Tree<'a> {
    msgs: &'a [ThreadMessage],
    nodes: Vec<Node>,
}

impl Tree<'_> {
    fn add(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Node {
            msg,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    /// Whether `a` is `b` or lies under it. Walking up from `a` and
    /// searching down from `b` go in step and the first to finish answers,
    /// so the cost is the smaller of `a`'s depth and `b`'s subtree: linking
    /// a new reply (no children yet) below a long chain costs nothing.
    fn under(&self, a: usize, b: usize) -> bool {
        let mut up = Some(a);
        let mut down = vec![b];
        loop {
            match up {
                Some(n) if n == b => return true,
                Some(n) => up = self.nodes[n].parent,
                None => return false,
            }
            match down.pop() {
                Some(n) if n == a => return true,
                Some(n) => down.extend(&self.nodes[n].children),
                None => return false,
            }
        }
    }

    /// Makes `parent` the parent of `child`, which has none, unless that
    /// would make a loop.
    fn link(&mut self, parent: usize, child: usize) {
        debug_assert!(self.nodes[child].parent.is_none());
        if !self.under(parent, child) {
            self.nodes[child].parent = Some(parent);
            self.nodes[parent].children.push(child);
        }
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    /// The message a node's date and subject are taken from: its own, or
    /// for a dummy its first child's (RFC 5256 §3 REFERENCES steps 4 and 5).
    fn representative(&self, mut n: usize) -> Option<&ThreadMessage> {
        loop {
            match self.nodes[n].msg {
                Some(m) => return Some(&self.msgs[m]),
                None => n = *self.nodes[n].children.first()?,
            }
        }
    }

    fn order(&self, a: usize, b: usize) -> Ordering {
        match (self.representative(a), self.representative(b)) {
            (Some(x), Some(y)) => sent(x, y),
            (x, y) => x.is_some().cmp(&y.is_some()),
        }
    }

    fn sort(&self, list: &mut [usize]) {
        list.sort_by(|&a, &b| self.order(a, b));
    }

    /// Every node under the given ones, parents before children.
    fn preorder(&self, roots: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
        while let Some(n) = stack.pop() {
            out.push(n);
            stack.extend(self.nodes[n].children.iter().rev());
        }
        out
    }

    /// Step (3): dummies without children go; a dummy's children take its
    /// place, except at the root level where only a single child does.
    fn prune(&mut self, roots: Vec<usize>) -> Vec<usize> {
        // Children are pruned before their parents, so a dummy left with
        // only dummies below it is seen as childless.
        for n in self.preorder(&roots).into_iter().rev() {
            let mut kept = Vec::new();
            for c in std::mem::take(&mut self.nodes[n].children) {
                if self.nodes[c].msg.is_none() {
                    kept.append(&mut self.nodes[c].children);
                } else {
                    kept.push(c);
                }
            }
            self.nodes[n].children = kept;
        }
        let mut out = Vec::new();
        for r in roots {
            let node = &mut self.nodes[r];
            if node.msg.is_none() && node.children.len() <= 1 {
                out.append(&mut node.children);
            } else {
                out.push(r);
            }
        }
        out
    }

    /// Step (5): root threads whose subjects match are gathered.
    fn gather_subjects(&mut self, roots: Vec<usize>) -> Vec<usize> {
        let subject_of =
            |t: &Tree<'_>, n: usize| t.representative(n).map(|m| subject::extract(&m.subject));
        let dummy = |t: &Tree<'_>, n: usize| t.nodes[n].msg.is_none();
        // For a dummy the answer is no: only messages carry subjects.
        let reply =
            |t: &Tree<'_>, n: usize, s: &subject::Extracted| !dummy(t, n) && s.reply_or_forward;
        let mut info = Vec::with_capacity(roots.len());
        for &r in &roots {
            let s = subject_of(self, r).unwrap_or(subject::Extracted {
                base: String::new(),
                reply_or_forward: false,
            });
            let key = subject::casemap(&s.base);
            let reply = reply(self, r, &s);
            info.push((key, reply));
        }
        // (B) One thread per subject, preferring a dummy, then a message
        // that is not a reply or forward.
        let mut table: HashMap<&str, (usize, bool)> = HashMap::new();
        for (&r, (key, reply)) in roots.iter().zip(&info) {
            // (ii) Threads without a subject are left alone.
            if key.is_empty() {
                continue;
            }
            match table.get(key.as_str()) {
                None => {
                    table.insert(key, (r, *reply));
                }
                Some(&(t, t_reply)) => {
                    if !dummy(self, t) && (dummy(self, r) || (t_reply && !reply)) {
                        table.insert(key, (r, *reply));
                    }
                }
            }
        }
        // (C) Threads are merged into the one in the table.
        let mut out = Vec::new();
        for (&r, (key, reply)) in roots.iter().zip(&info) {
            let Some(&(t, t_reply)) = table.get(key.as_str()) else {
                out.push(r);
                continue;
            };
            if t == r {
                out.push(r);
            } else if dummy(self, t) && dummy(self, r) {
                // Both dummies: the children become siblings.
                let mut children = std::mem::take(&mut self.nodes[r].children);
                self.nodes[t].children.append(&mut children);
            } else if dummy(self, t) || (*reply && !t_reply) {
                // Under the dummy, or the reply under the original.
                self.nodes[t].children.push(r);
            } else {
                // Neither is a reply to the other: both go under a new
                // dummy, which takes the table thread's place. The table
                // thread's node becomes that dummy and its message moves to
                // a new node, so the node already in `out` stays right.
                let msg = self.nodes[t].msg.take();
                let moved = self.add(msg);
                self.nodes[moved].children = std::mem::take(&mut self.nodes[t].children);
                self.nodes[t].children = vec![moved, r];
                // The table still names `t`, now a dummy.
            }
        }
        out
    }

    fn thread(&self, root: usize) -> Thread {
        let mut nodes = Vec::new();
        let mut index: HashMap<usize, usize> = HashMap::new();
        for n in self.preorder(&[root]) {
            index.insert(n, nodes.len());
            nodes.push(ThreadNode {
                id: self.nodes[n].msg.map(|m| self.msgs[m].id),
                children: Vec::new(),
            });
        }
        for (&n, &i) in &index {
            nodes[i].children = self.nodes[n].children.iter().map(|c| index[c]).collect();
        }
        Thread { nodes }
    }
}

/// The threads of RFC 5256 §3 REFERENCES, steps (1) to (6).
pub fn references(msgs: &[ThreadMessage]) -> Vec<Thread> {
    let mut tree = Tree {
        msgs,
        nodes: Vec::with_capacity(msgs.len()),
    };
    // Messages are taken in sequence order: the first of several with one
    // Message-ID keeps it.
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by_key(|&i| msgs[i].id);
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut node_of = vec![0; msgs.len()];
    for &i in &order {
        node_of[i] = tree.add(Some(i));
        // (1) "If a message does not contain a Message-ID header line, or
        // [it] does not contain a valid Message ID, then assign a unique
        // Message ID"; the same for the second of two equal ones. A unique
        // ID nothing can refer to is the same as no entry in the table.
        if let Some(id) = msgs[i].message_id.as_deref().and_then(own_id) {
            by_id.entry(id).or_insert(node_of[i]);
        }
    }
    for &i in &order {
        let mut refs = Vec::new();
        for id in reference_ids(&msgs[i]) {
            // "If no message can be found with a given Message ID, create a
            // dummy message with this ID."
            refs.push(*by_id.entry(id).or_insert_with(|| tree.add(None)));
        }
        // (1)(A) Each reference is the parent of the next, unless the next
        // already has a parent or the link would make a loop.
        for pair in refs.windows(2) {
            if tree.nodes[pair[1]].parent.is_none() {
                tree.link(pair[0], pair[1]);
            }
        }
        // (1)(B) The last reference is the message's parent, whatever
        // parent it had (likely from a truncated References), loops aside;
        // with no references it has none.
        let me = node_of[i];
        tree.unlink(me);
        if let Some(&last) = refs.last() {
            tree.link(last, me);
        }
    }
    // (2) The messages without parents are the root's children.
    let roots: Vec<usize> = (0..tree.nodes.len())
        .filter(|&n| tree.nodes[n].parent.is_none())
        .collect();
    // (3) Dummies pruned.
    let mut roots = tree.prune(roots);
    // (4) The root's children sorted by sent date, a dummy by its first
    // child's once its children are sorted.
    for &r in &roots {
        if tree.nodes[r].msg.is_none() {
            let mut children = std::mem::take(&mut tree.nodes[r].children);
            tree.sort(&mut children);
            tree.nodes[r].children = children;
        }
    }
    tree.sort(&mut roots);
    // (5) Threads gathered by subject.
    let mut roots = tree.gather_subjects(roots);
    // (6) Every set of siblings sorted, children before their parents.
    for n in tree.preorder(&roots).into_iter().rev() {
        let mut children = std::mem::take(&mut tree.nodes[n].children);
        tree.sort(&mut children);
        tree.nodes[n].children = children;
    }
    tree.sort(&mut roots);
    roots.into_iter().map(|r| tree.thread(r)).collect()
}

/// The references of RFC 5256 §3 REFERENCES: the Message IDs in References,
/// or if it holds none, the first valid one in In-Reply-To (which is
/// trusted only as far as a reply to a single message).
fn reference_ids(m: &ThreadMessage) -> Vec<String> {
    let refs = m.references.as_deref().map(msg_ids).unwrap_or_default();
    if !refs.is_empty() {
        return refs;
    }
    let first = m.in_reply_to.as_deref().map(msg_ids).unwrap_or_default();
    first.into_iter().take(1).collect()
}

/// A message's own Message-ID (given without brackets), normalized like
/// the references that name it; `None` when it is not a valid one.
fn own_id(id: &str) -> Option<String> {
    let id = id.trim();
    let bracketed = if id.starts_with('<') {
        id.to_string()
    } else {
        format!("<{id}>")
    };
    msg_ids(&bracketed).into_iter().next()
}

/// The Message IDs in a References or In-Reply-To value, normalized for
/// comparison (RFC 5256 §3 "Note"): the brackets, comments and white space
/// dropped and quoting undone. IDs without `id-left "@" id-right` (RFC 5322
/// §3.6.4) are left out; text outside brackets (phrases, comments) is skipped.
pub fn msg_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    // The ID being read, and where its first unquoted "@" is.
    let mut open: Option<(String, Option<usize>)> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '(' => skip_comment(&mut chars),
            '"' => {
                let text = quoted(&mut chars);
                if let Some((id, _)) = open.as_mut() {
                    id.push_str(&text);
                }
            }
            '<' => open = Some((String::new(), None)),
            '>' => {
                if let Some((id, Some(at))) = open.take()
                    && at > 0
                    && at + 1 < id.len()
                {
                    out.push(id);
                }
            }
            c if c.is_whitespace() => {}
            c => {
                if let Some((id, at)) = open.as_mut() {
                    if c == '@' && at.is_none() {
                        *at = Some(id.len());
                    }
                    id.push(c);
                }
            }
        }
    }
    out
}

/// Skips a comment whose "(" was read, nested ones and quoted pairs included.
fn skip_comment(chars: &mut std::str::Chars<'_>) {
    let mut depth = 1;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// The text of a quoted string whose opening quote was read, unquoted.
fn quoted(chars: &mut std::str::Chars<'_>) -> String {
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

/// The thread-list of the untagged THREAD response (RFC 5256 §4), such as
/// `(2)(3 6 (4 23)(44 7 96))`: a message followed by its only child, or by
/// each of its children in parentheses; a dummy is only its children.
pub fn render(threads: &[Thread]) -> String {
    enum Step {
        Node(usize),
        Text(&'static str),
    }
    let mut out = String::new();
    for t in threads {
        if t.ids().next().is_none() {
            continue;
        }
        out.push('(');
        let mut stack = vec![Step::Node(0)];
        while let Some(step) = stack.pop() {
            let n = match step {
                Step::Text(s) => {
                    out.push_str(s);
                    continue;
                }
                Step::Node(n) => &t.nodes[n],
            };
            if let Some(id) = n.id {
                out.push_str(&id.to_string());
            }
            let lead = if n.id.is_some() { " " } else { "" };
            match n.children.as_slice() {
                [] => {}
                // thread-members: a single child follows in the same list.
                &[only] => {
                    stack.push(Step::Node(only));
                    stack.push(Step::Text(lead));
                }
                // thread-nested: two or more, each in its own list.
                many => {
                    for &c in many.iter().rev() {
                        stack.push(Step::Text(")"));
                        stack.push(Step::Node(c));
                        stack.push(Step::Text("("));
                    }
                    stack.push(Step::Text(lead));
                }
            }
        }
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message with an id, Message-ID, References, In-Reply-To, subject and date.
    fn m(
        id: u32,
        mid: Option<&str>,
        refs: Option<&str>,
        irt: Option<&str>,
        subject: &str,
        date: i64,
    ) -> ThreadMessage {
        ThreadMessage {
            id,
            message_id: mid.map(str::to_string),
            in_reply_to: irt.map(str::to_string),
            references: refs.map(str::to_string),
            subject: subject.to_string(),
            date,
        }
    }

    /// Messages numbered from 1, with a Message-ID `<mid>` and References only.
    fn simple(list: &[(&str, &str, &str, i64)]) -> Vec<ThreadMessage> {
        list.iter()
            .enumerate()
            .map(|(i, &(mid, refs, subject, date))| {
                let mid = (!mid.is_empty()).then_some(mid);
                let refs = (!refs.is_empty()).then_some(refs);
                m(i as u32 + 1, mid, refs, None, subject, date)
            })
            .collect()
    }

    fn refs(msgs: &[ThreadMessage]) -> String {
        render(&references(msgs))
    }

    fn ordered(msgs: &[ThreadMessage]) -> String {
        render(&ordered_subject(msgs))
    }

    fn node(id: Option<u32>, children: &[usize]) -> ThreadNode {
        ThreadNode {
            id,
            children: children.to_vec(),
        }
    }

    #[test]
    fn renders_the_rfc_examples() {
        // RFC 5256 §4: "(2)(3 6 (4 23)(44 7 96))" and "((3)(5))".
        let two = Thread {
            nodes: vec![node(Some(2), &[])],
        };
        let three = Thread {
            nodes: vec![
                node(Some(3), &[1]),
                node(Some(6), &[2, 4]),
                node(Some(4), &[3]),
                node(Some(23), &[]),
                node(Some(44), &[5]),
                node(Some(7), &[6]),
                node(Some(96), &[]),
            ],
        };
        assert_eq!(render(&[two, three]), "(2)(3 6 (4 23)(44 7 96))");
        let dummy = Thread {
            nodes: vec![node(None, &[1, 2]), node(Some(3), &[]), node(Some(5), &[])],
        };
        assert_eq!(render(&[dummy]), "((3)(5))");
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn references_rebuilds_the_rfc_example() {
        // The tree of RFC 5256 §4's example, from References fields; 7 is
        // a child of 44 although older, as the RFC's moved messages are.
        let r = |ids: &[u32]| {
            ids.iter()
                .map(|i| format!("<m{i}@x>"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let msg = |id: u32, parents: &[u32], subject: &str, date: i64| {
            let mid = format!("m{id}@x");
            let refs = r(parents);
            m(
                id,
                Some(&mid),
                Some(&refs).filter(|s| !s.is_empty()).map(|s| s.as_str()),
                None,
                subject,
                date,
            )
        };
        let msgs = vec![
            msg(2, &[], "a", 1),
            msg(3, &[], "b", 2),
            msg(4, &[3, 6], "Re: b", 4),
            msg(6, &[3], "Re: b", 3),
            msg(7, &[3, 6, 44], "Re: b", 7),
            msg(23, &[3, 6, 4], "Re: b", 5),
            msg(44, &[3, 6], "Re: b", 6),
            msg(96, &[3, 6, 44, 7], "Re: b", 8),
        ];
        assert_eq!(refs(&msgs), "(2)(3 6 (4 23)(44 7 96))");
        // Only the messages passed in count: with 3 and 6 left out, 4's
        // parents are dummies, pruned away.
        let some: Vec<ThreadMessage> = msgs
            .iter()
            .filter(|m| [2, 4].contains(&m.id))
            .cloned()
            .collect();
        assert_eq!(refs(&some), "(2)(4)");
        // With 6 left out, 4 and 44 hang under 3 through the dummy.
        let some: Vec<ThreadMessage> = msgs.iter().filter(|m| m.id != 6).cloned().collect();
        assert_eq!(refs(&some), "(2)(3 (4 23)(44 7 96))");
        // ORDEREDSUBJECT: one thread per base subject, flat below its first message.
        assert_eq!(ordered(&msgs), "(2)(3 (6)(4)(23)(44)(7)(96))");
    }

    #[test]
    fn reply_chain_and_in_reply_to() {
        let msgs = vec![
            m(1, Some("a@x"), None, None, "a", 1),
            m(2, Some("b@x"), None, Some("<a@x>"), "b", 2),
            // Only the first ID of In-Reply-To counts: here a missing one.
            m(3, Some("c@x"), None, Some("<zz@x> <a@x>"), "c", 3),
            // References without a valid ID: In-Reply-To is used instead.
            m(4, Some("d@x"), Some("junk"), Some("<a@x>"), "d", 4),
            m(
                5,
                Some("e@x"),
                None,
                Some("<a@x> (Joe's message of \"Mon <zz@x>\")"),
                "e",
                5,
            ),
            // References wins over In-Reply-To.
            m(6, Some("f@x"), Some("<a@x>"), Some("<b@x>"), "f", 6),
            m(7, Some("g@x"), Some("<a@x>\r\n <f@x>"), None, "g", 7),
        ];
        assert_eq!(refs(&msgs), "(1 (2)(4)(5)(6 7))(3)");
    }

    #[test]
    fn dummies_for_missing_parents() {
        // Two siblings of a parent that does not exist stay under a dummy.
        let msgs = simple(&[("m3@x", "<gone@x>", "p", 1), ("m5@x", "<gone@x>", "q", 2)]);
        assert_eq!(refs(&msgs), "((1)(2))");
        // A lone child of a missing message is promoted to the root.
        let msgs = simple(&[("m3@x", "<gone@x>", "p", 1), ("m5@x", "", "q", 2)]);
        assert_eq!(refs(&msgs), "(1)(2)");
        // A missing message in the middle of a chain is spliced out.
        let msgs = simple(&[("a@x", "", "a", 1), ("c@x", "<a@x> <b@x>", "c", 2)]);
        assert_eq!(refs(&msgs), "(1 2)");
        // Below the root, a dummy's children take its place, however many.
        let msgs = simple(&[
            ("a@x", "", "a", 1),
            ("c@x", "<a@x> <b@x>", "c", 2),
            ("d@x", "<a@x> <b@x>", "d", 3),
        ]);
        assert_eq!(refs(&msgs), "(1 (2)(3))");
    }

    #[test]
    fn loops_are_not_made() {
        let msgs = simple(&[
            ("a@x", "<b@x>", "a", 1),
            ("b@x", "<a@x>", "b", 2),
            ("c@x", "<x@x> <y@x> <x@x>", "c", 3),
            ("d@x", "<d@x>", "d", 4),
            ("e@x", "<d@x> <e@x> <a@x>", "e", 5),
        ]);
        assert_eq!(refs(&msgs), "(2 1 5)(3)(4)");
    }

    #[test]
    fn duplicate_and_missing_message_ids_are_unique() {
        let msgs = simple(&[
            ("a@x", "", "s1", 1),
            ("a@x", "", "s2", 2),
            ("c@x", "<a@x>", "Re: s1", 3),
            ("", "", "n1", 4),
            ("", "", "n2", 5),
            ("invalid", "", "n3", 6),
            ("", "<invalid>", "n4", 7),
        ]);
        assert_eq!(refs(&msgs), "(1 3)(2)(4)(5)(6)(7)");
        // The first by sequence number keeps the ID, whatever the slice's order.
        let mut shuffled = msgs.clone();
        shuffled.reverse();
        assert_eq!(refs(&shuffled), "(1 3)(2)(4)(5)(6)(7)");
    }

    #[test]
    fn links_follow_rfc_step_1() {
        // (A) an existing parent is kept; (B) the message's own last
        // reference decides its parent.
        let msgs = simple(&[
            ("a@x", "", "a", 1),
            ("b@x", "<a@x>", "b", 2),
            ("c@x", "<b@x>", "c", 3),
            ("d@x", "<a@x> <c@x>", "d", 4),
            ("e@x", "<x@x> <b@x> <d@x>", "e", 5),
        ]);
        assert_eq!(refs(&msgs), "(1 2 3 4 5)");
        // A parent guessed from another message's References gives way to
        // the message's own.
        let msgs = simple(&[
            ("a@x", "", "a", 1),
            ("c@x", "<z@x> <b@x>", "c", 2),
            ("b@x", "<a@x>", "b", 3),
        ]);
        assert_eq!(refs(&msgs), "(1 3 2)");
        // A message without references has no parent, whatever others say.
        let msgs = simple(&[
            ("a@x", "", "a", 1),
            ("c@x", "<a@x> <b@x>", "c", 2),
            ("b@x", "", "b", 3),
        ]);
        assert_eq!(refs(&msgs), "(1)(3 2)");
        // IDs are compared case-sensitively, after undoing quoting.
        let msgs = simple(&[
            ("A@x", "", "a", 1),
            ("b@x", "<a@x>", "b", 2),
            ("\"q r\"@x", "", "c", 3),
            ("d@x", "<\"q\\ r\" @ x>", "d", 4),
        ]);
        assert_eq!(refs(&msgs), "(1)(2)(3 4)");
    }

    #[test]
    fn roots_gathered_by_subject() {
        let t = |list: &[(&str, &str, &str, i64)]| refs(&simple(list));
        // Two originals: both under a dummy.
        assert_eq!(
            t(&[("a@x", "", "Hello", 1), ("b@x", "", "hello", 2)]),
            "((1)(2))"
        );
        // A reply goes under the original, older or not.
        assert_eq!(
            t(&[("a@x", "", "Hello", 1), ("b@x", "", "Re: Hello", 2)]),
            "(1 2)"
        );
        assert_eq!(
            t(&[("a@x", "", "Re: Hello", 1), ("b@x", "", "Hello", 2)]),
            "(2 1)"
        );
        // Messages go under a dummy of the same subject (its first child's).
        assert_eq!(
            t(&[
                ("a@x", "<gone@x>", "Topic", 1),
                ("b@x", "<gone@x>", "Re: Topic", 3),
                ("c@x", "", "Re: Topic", 2),
                ("d@x", "", "topic", 4),
            ]),
            "((1)(3)(2)(4))"
        );
        // Two dummies of one subject become one.
        assert_eq!(
            t(&[
                ("a@x", "<g1@x>", "T", 1),
                ("b@x", "<g1@x>", "T", 3),
                ("c@x", "<g2@x>", "T", 2),
                ("d@x", "<g2@x>", "T", 4)
            ]),
            "((1)(3)(2)(4))"
        );
        // Empty subjects are never gathered.
        assert_eq!(
            t(&[
                ("a@x", "", "", 1),
                ("b@x", "", "", 2),
                ("c@x", "", "Re:", 3)
            ]),
            "(1)(2)(3)"
        );
        // The reply under the first original; the second original and what
        // follows under a new dummy with the first.
        assert_eq!(
            t(&[
                ("a@x", "", "x", 3),
                ("b@x", "", "x", 1),
                ("c@x", "", "Re: x", 2),
                ("d@x", "", "x", 4)
            ]),
            "((2 3)(1)(4))"
        );
        // Forwards count as replies, by "[fwd: ]" or "(fwd)".
        assert_eq!(
            t(&[
                ("a@x", "", "x", 1),
                ("b@x", "", "[fwd: x]", 2),
                ("c@x", "<b@x>", "Re: x", 3),
                ("d@x", "", "x (fwd)", 4)
            ]),
            "(1 (2 3)(4))"
        );
        // Only roots are gathered: a reply deep in another thread stays there.
        assert_eq!(
            t(&[
                ("a@x", "", "x", 1),
                ("b@x", "", "y", 2),
                ("c@x", "<b@x>", "Re: x", 3)
            ]),
            "(1)(2 3)"
        );
    }

    #[test]
    fn sorted_by_sent_date_then_id() {
        let msgs = simple(&[
            ("a@x", "", "a", 5),
            ("b@x", "", "b", 5),
            ("c@x", "<a@x>", "c", 9),
            ("d@x", "<a@x>", "d", 9),
            ("e@x", "<a@x>", "e", 1),
        ]);
        assert_eq!(refs(&msgs), "(1 (5)(3)(4))(2)");
        assert_eq!(ordered(&msgs), "(5)(1)(2)(3)(4)");
        // A dummy root sorts by its oldest child.
        let msgs = simple(&[
            ("a@x", "", "a", 5),
            ("b@x", "<g@x>", "b", 7),
            ("c@x", "<g@x>", "c", 3),
        ]);
        assert_eq!(refs(&msgs), "((3)(2))(1)");
    }

    #[test]
    fn ordered_subject_threads() {
        let msgs = simple(&[
            ("", "", "Hello", 3),
            ("", "", "Re: hello", 1),
            ("", "", "other", 2),
            ("", "", "[fwd: HELLO]", 4),
            ("", "", "", 5),
            ("", "", "Re:", 6),
        ]);
        // "Hello" starts at message 2 (the oldest); a pair is written "a b".
        assert_eq!(ordered(&msgs), "(2 (1)(4))(3)(5 6)");
        assert_eq!(ordered(&[]), "");
    }

    #[test]
    fn message_ids_are_normalized() {
        assert_eq!(msg_ids("<a@x> <b@y>"), ["a@x", "b@y"]);
        assert_eq!(msg_ids("<a@x>\r\n\t<b@y>(comment <c@z>)"), ["a@x", "b@y"]);
        assert_eq!(msg_ids("\"<q@z>\" <a@x>"), ["a@x"]);
        assert_eq!(msg_ids("<\"a b\"@x>"), ["a b@x"]);
        assert_eq!(msg_ids("< a @ x >"), ["a@x"]);
        assert_eq!(msg_ids("<nope> <@x> <a@> <a@x"), Vec::<String>::new());
        assert_eq!(msg_ids("<<a@x>"), ["a@x"]);
    }

    #[test]
    fn a_long_chain_does_not_recurse() {
        // Deep enough to overflow any stack if walked recursively.
        let n = 200_000u32;
        let msgs: Vec<ThreadMessage> = (1..=n)
            .map(|i| {
                let mid = format!("m{i}@x");
                let parent = format!("<m{}@x>", i - 1);
                m(
                    i,
                    Some(&mid),
                    (i > 1).then_some(parent.as_str()),
                    None,
                    "x",
                    i as i64,
                )
            })
            .collect();
        let threads = references(&msgs);
        assert_eq!(threads.len(), 1);
        assert_eq!(
            threads[0].ids().collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>()
        );
        let text = render(&threads);
        assert!(text.starts_with("(1 2 3 ") && text.ends_with(&format!(" {n})")));
    }
}
