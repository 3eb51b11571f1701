//! A small element tree over quick-xml that remembers where every element sits in the source text.
//!
//! The typed `<cpu>` model is read from this tree, and the domain editor splices the original text
//! at the byte spans recorded here, so everything it does not touch stays byte-for-byte the same.
//!
//! Hostile input: quick-xml never expands entities declared in a DOCTYPE, so this reader accepts the
//! five predefined entities and character references and rejects every other `&name;` with a parse
//! error (no billion laughs). Nesting is limited to [`MAX_DEPTH`] so that neither this reader nor
//! the recursive code that walks the tree (or drops it) can run out of stack.

use std::borrow::Cow;
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::{Error, Result};

/// The deepest element nesting accepted. libvirt domains nest fewer than ten levels.
pub(crate) const MAX_DEPTH: usize = 256;

/// One attribute with the byte range of its (still escaped) value in the source.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub(crate) name: String,
    pub(crate) value: String,
    /// Byte range of the value between its quotes.
    pub(crate) value_span: Range<usize>,
}

/// One element with its children and where it sits in the source.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) attrs: Vec<Attr>,
    pub(crate) children: Vec<Node>,
    /// Character data directly inside this element (text and CDATA, references resolved).
    pub(crate) text: String,
    /// From `<` of the start tag to just after `>` of the end tag (or of `/>`).
    pub(crate) span: Range<usize>,
    /// The start tag (or the whole empty-element tag).
    pub(crate) open: Range<usize>,
    /// `<cpu/>` rather than `<cpu></cpu>`.
    pub(crate) self_closing: bool,
}

impl Node {
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    pub(crate) fn attr_full(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }

    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Where the end tag starts (the end of the span for a self-closing element).
    pub(crate) fn close_start(&self, src: &str) -> usize {
        if self.self_closing {
            return self.span.end;
        }
        src[..self.span.end].rfind("</").unwrap_or(self.span.end)
    }
}

/// Line and column (both from 1) of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

fn err_at(what: &str, src: &str, offset: usize, reason: impl std::fmt::Display) -> Error {
    let (line, col) = line_col(src, offset);
    Error::parse(
        what,
        format!("{reason} at line {line}, column {col} (byte {offset})"),
    )
}

fn resolve_ref(name: &str) -> Option<Cow<'static, str>> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x') {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        let ch = char::from_u32(code)?;
        if !is_xml_char(ch) {
            return None;
        }
        return Some(Cow::Owned(ch.to_string()));
    }
    quick_xml::escape::resolve_predefined_entity(name).map(Cow::Borrowed)
}

/// A character allowed in an XML 1.0 document.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn start_node(what: &str, src: &str, e: &BytesStart<'_>, at: usize, end: usize) -> Result<Node> {
    let name = std::str::from_utf8(e.name().as_ref())
        .map_err(|_| err_at(what, src, at, "element name is not UTF-8"))?
        .to_string();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| err_at(what, src, at, format!("bad attribute in <{name}>: {e}")))?;
        let key = std::str::from_utf8(a.key.as_ref())
            .map_err(|_| err_at(what, src, at, "attribute name is not UTF-8"))?
            .to_string();
        let value = a
            .unescape_value()
            .map_err(|e| {
                err_at(
                    what,
                    src,
                    at,
                    format!(
                        "attribute {key} of <{name}>: {e} (only the predefined XML entities are accepted)"
                    ),
                )
            })?
            .into_owned();
        if attrs.iter().any(|x: &Attr| x.name == key) {
            return Err(err_at(
                what,
                src,
                at,
                format!("duplicate attribute {key} in <{name}>"),
            ));
        }
        // The raw value's position: quick-xml borrows it from the source, so its pointer tells where.
        let raw: &[u8] = a.value.as_ref();
        let value_span = if raw.is_empty() {
            // Find the empty quotes after `key=`.
            let tag = &src[at..end];
            let pos = tag
                .find(&format!("{key}="))
                .map_or(at, |p| at + p + key.len() + 2);
            pos..pos
        } else {
            let base = src.as_ptr() as usize;
            let start = (raw.as_ptr() as usize).wrapping_sub(base);
            if start >= at && start + raw.len() <= end {
                start..start + raw.len()
            } else {
                return Err(err_at(
                    what,
                    src,
                    at,
                    "internal: attribute value not borrowed from input",
                ));
            }
        };
        attrs.push(Attr {
            name: key,
            value,
            value_span,
        });
    }
    Ok(Node {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
        span: at..end,
        open: at..end,
        self_closing: false,
    })
}

/// Parses a whole document into its root element.
///
/// `what` names the input in errors ("libvirt <cpu> XML", "domain XML").
pub(crate) fn parse(src: &str, what: &str) -> Result<Node> {
    let mut reader = Reader::from_str(src);
    {
        let cfg = reader.config_mut();
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.expand_empty_elements = false;
        cfg.trim_text(false);
    }
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let at = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                let pos = usize::try_from(reader.error_position()).unwrap_or(at);
                return Err(err_at(what, src, pos, format!("malformed XML: {e}")));
            }
        };
        let end = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(err_at(what, src, at, "content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(err_at(
                        what,
                        src,
                        at,
                        format!("elements nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                stack.push(start_node(what, src, &e, at, end)?);
            }
            Event::Empty(e) => {
                if root.is_some() {
                    return Err(err_at(what, src, at, "content after the root element"));
                }
                let mut node = start_node(what, src, &e, at, end)?;
                node.self_closing = true;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let Some(mut node) = stack.pop() else {
                    return Err(err_at(what, src, at, "end tag without a start tag"));
                };
                node.span.end = end;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let text = t
                    .decode()
                    .map_err(|e| err_at(what, src, at, format!("text: {e}")))?;
                match stack.last_mut() {
                    Some(parent) => parent.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(err_at(what, src, at, "text outside the root element")),
                }
            }
            Event::CData(t) => {
                let text = t
                    .decode()
                    .map_err(|e| err_at(what, src, at, format!("CDATA: {e}")))?;
                match stack.last_mut() {
                    Some(parent) => parent.text.push_str(&text),
                    None => return Err(err_at(what, src, at, "CDATA outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                let name = r
                    .decode()
                    .map_err(|e| err_at(what, src, at, format!("reference: {e}")))?;
                let Some(resolved) = resolve_ref(&name) else {
                    return Err(err_at(
                        what,
                        src,
                        at,
                        format!("undefined or invalid reference &{name}; (entities from a DOCTYPE are never expanded)"),
                    ));
                };
                match stack.last_mut() {
                    Some(parent) => parent.text.push_str(&resolved),
                    None => return Err(err_at(what, src, at, "reference outside the root element")),
                }
            }
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(err_at(
            what,
            src,
            src.len(),
            format!("unclosed element <{}>", open.name),
        ));
    }
    root.ok_or_else(|| err_at(what, src, src.len(), "no root element"))
}

/// Escapes text or an attribute value (for single or double quotes). The only escaping function
/// of the guest module: every string that reaches generated XML passes through here.
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn spans_and_attrs() {
        let src = "<a x=\"1\" y='&lt;2'>\n  <b/>t&amp;u<c>v</c></a>";
        let root = parse(src, "t").unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attr("y"), Some("<2"));
        let y = root.attr_full("y").unwrap();
        assert_eq!(&src[y.value_span.clone()], "&lt;2");
        assert_eq!(root.children.len(), 2);
        assert!(root.children[0].self_closing);
        assert_eq!(&src[root.children[0].span.clone()], "<b/>");
        assert_eq!(&src[root.children[1].span.clone()], "<c>v</c>");
        assert_eq!(root.text.trim(), "t&u");
        assert_eq!(root.span, 0..src.len());
        assert_eq!(root.close_start(src), src.len() - 4);
    }

    #[test]
    fn empty_attribute_value_span() {
        let src = "<a k=''/>";
        let root = parse(src, "t").unwrap();
        let k = root.attr_full("k").unwrap();
        assert_eq!(k.value_span, 6..6);
    }

    #[test]
    fn billion_laughs_is_rejected_not_expanded() {
        let src = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<cpu><model>&lol2;</model></cpu>"#;
        let err = parse(src, "t").unwrap_err();
        assert!(matches!(err, Error::Parse { .. }));
        assert!(err.to_string().contains("&lol2;"), "{err}");
        let src = "<!DOCTYPE a [<!ENTITY e \"x\">]><a v='&e;'/>";
        assert!(matches!(parse(src, "t"), Err(Error::Parse { .. })));
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let depth = 100_000;
        let src = "<a>".repeat(depth) + &"</a>".repeat(depth);
        let err = parse(&src, "t").unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(parse(&ok, "t").is_ok());
    }

    #[test]
    fn malformed_has_position() {
        for bad in [
            "<a><b></a>",
            "<a",
            "<a></a><b/>",
            "",
            "text",
            "<a x='1' x='2'/>",
            "<a>&#0;</a>",
            "<a>&#xD800;</a>",
        ] {
            let err = parse(bad, "t").unwrap_err();
            assert!(matches!(err, Error::Parse { .. }), "{bad}");
            assert!(err.to_string().contains("line "), "{bad}: {err}");
        }
    }

    #[test]
    fn char_refs() {
        let root = parse("<a>&#65;&#x42;&quot;</a>", "t").unwrap();
        assert_eq!(root.text, "AB\"");
    }

    #[test]
    fn line_col_counts() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }
}
