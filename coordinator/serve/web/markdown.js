/* A small Markdown renderer for the model's replies, building DOM nodes.
 *
 * The text comes from a model and is untrusted: nothing of it is ever parsed
 * as HTML. Every piece goes into the page as a text node (textContent), so
 * "<script>" in a reply shows as those characters. Links keep only http(s)
 * and mailto targets. What it knows: fenced code blocks (``` with a language
 * name, also while still open during streaming), headings, bullet and
 * numbered lists, block quotes, horizontal rules, paragraphs, and inline
 * code, bold, italic and links. */
"use strict";

const Markdown = (() => {
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function safeHref(url) {
    try {
      const u = new URL(url, location.href);
      return ["http:", "https:", "mailto:"].includes(u.protocol) ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  // Inline spans: `code`, **bold**, *italic* / _italic_, [text](url).
  // (a fresh RegExp per call: the spans nest, and a shared one's lastIndex would be reset by the inner call)
  const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|\b_([^_\s][^_]*)_\b|\[([^\]]+)\]\(([^)\s]+)\)/g;

  function inline(parent, text) {
    const re = new RegExp(INLINE.source, "g");
    let last = 0;
    for (let m; (m = re.exec(text)); ) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[1]) parent.appendChild(el("code", null, m[2]));
      else if (m[3] || m[4]) inline(parent.appendChild(el("strong")), m[3] || m[4]);
      else if (m[5] || m[6]) inline(parent.appendChild(el("em")), m[5] || m[6]);
      else {
        const href = safeHref(m[8]);
        if (href) {
          const a = el("a");
          a.href = href;
          a.rel = "noopener noreferrer";
          a.target = "_blank";
          inline(a, m[7]);
          parent.appendChild(a);
        } else parent.appendChild(document.createTextNode(m[0]));
      }
      last = re.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function codeBlock(lang, lines) {
    const pre = el("pre", "code");
    if (lang) pre.appendChild(el("span", "lang", lang));
    const code = el("code", null, lines.join("\n"));
    if (lang) code.dataset.lang = lang;
    pre.appendChild(code);
    return pre;
  }

  // The text as a fragment of block elements.
  function render(text) {
    const out = document.createDocumentFragment();
    const lines = text.replace(/\r\n?/g, "\n").split("\n");
    let para = [], list = null, quote = [];
    const flushPara = () => {
      if (para.length) inline(out.appendChild(el("p")), para.join("\n"));
      para = [];
    };
    const flushList = () => { list = null; };
    const flushQuote = () => {
      if (quote.length) out.appendChild(el("blockquote")).appendChild(render(quote.join("\n")));
      quote = [];
    };
    const flush = () => { flushPara(); flushList(); flushQuote(); };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if ((m = /^\s*(```+|~~~+)\s*([\w+#.-]*)\s*$/.exec(line))) {
        flush();
        const fence = m[1], body = [];
        for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence); i++) body.push(lines[i]);
        out.appendChild(codeBlock(m[2], body));   // an unclosed fence (still streaming) runs to the end
      } else if (/^\s*$/.test(line)) {
        flush();
      } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        flush();
        inline(out.appendChild(el("h" + Math.min(6, m[1].length + 2))), m[2]);
      } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
        flush();
        out.appendChild(el("hr"));
      } else if ((m = /^>\s?(.*)$/.exec(line))) {
        flushPara(); flushList();
        quote.push(m[1]);
      } else if ((m = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/.exec(line))) {
        flushPara(); flushQuote();
        const tag = m[1] ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = out.appendChild(el(tag));
          if (m[2] && m[2] !== "1") list.start = +m[2];
        }
        inline(list.appendChild(el("li")), m[3]);
      } else if (list && /^\s{2,}\S/.test(line) && list.lastChild) {
        list.lastChild.appendChild(document.createTextNode(" "));
        inline(list.lastChild, line.trim());
      } else {
        flushList(); flushQuote();
        para.push(line);
      }
    }
    flush();
    return out;
  }

  return { render };
})();
