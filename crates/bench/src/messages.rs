//! The message mix both load clients send.

/// Sizes and shapes: most mail is small, some carries attachments.
pub fn message(i: usize) -> Vec<u8> {
    // 60% ~2-8 KB text, 30% ~20-60 KB, 10% ~100-200 KB with a base64 attachment.
    let bucket = (i * 7919) % 10;
    let (text_kb, attachment_kb) = match bucket {
        0..=5 => (2 + (i % 7), 0),
        6..=8 => (20 + (i % 41), 0),
        _ => (4, 100 + (i % 101)),
    };
    let mut m = format!(
        "From: Load <load@sender.example>\r\nTo: <rcpt@bench.example>\r\nSubject: load test message {i}\r\n\
         Message-ID: <load-{i}@bench.example>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    );
    let boundary = format!("b{i}");
    if attachment_kb > 0 {
        m.push_str(&format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    } else {
        m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    }
    let line = "The council meets on Thursday; the minutes of the last session are attached.\r\n";
    while m.len() < text_kb * 1024 {
        m.push_str(line);
    }
    if attachment_kb > 0 {
        m.push_str(&format!("\r\n--{boundary}\r\nContent-Type: application/pdf; name=\"minutes-{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"minutes-{i}.pdf\"\r\n\r\n"));
        let b64 =
            "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k\r\n";
        let target = m.len() + attachment_kb * 1024;
        while m.len() < target {
            m.push_str(b64);
        }
        m.push_str(&format!("\r\n--{boundary}--\r\n"));
    }
    m.into_bytes()
}
