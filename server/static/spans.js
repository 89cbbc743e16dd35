/* Spans on the rater page: the server counts Unicode code points (server/labeling/spans.py),
 * the browser counts UTF-16 code units (an emoji is two). These convert between the two, and
 * read a selection inside a response as a code-point span. The response's text nodes hold
 * exactly the stored text (control-character markers are CSS ::before content), so walking
 * them gives the stored offsets. */
(function () {
  "use strict";

  /* The code-point offset of a UTF-16 offset into `text` (a split surrogate pair counts whole). */
  function toCodePoints(text, utf16) {
    var points = 0;
    for (var i = 0; i < utf16 && i < text.length; i++) {
      var unit = text.charCodeAt(i);
      if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
        var low = text.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) i++;
      }
      points++;
    }
    return points;
  }

  /* The UTF-16 offset of a code-point offset into `text`. */
  function toUtf16(text, points) {
    var i = 0;
    for (var n = 0; n < points && i < text.length; n++) {
      var unit = text.charCodeAt(i);
      i += unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length ? 2 : 1;
    }
    return i;
  }

  /* The UTF-16 offset of (node, offset) within the text of `root`. */
  function offsetIn(root, node, offset) {
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    var total = 0;
    var current;
    if (node.nodeType !== Node.TEXT_NODE) {
      // A boundary between children: count the text of the children before it.
      var range = document.createRange();
      range.selectNodeContents(root);
      range.setEnd(node, offset);
      return range.toString().length;
    }
    while ((current = walker.nextNode())) {
      if (current === node) return total + offset;
      total += current.nodeValue.length;
    }
    return -1;
  }

  /* The current selection as [start, end) code points of `root`'s text, or null when it is
   * empty or not wholly inside `root`. */
  function selectionSpan(root) {
    var selection = window.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return null;
    var range = selection.getRangeAt(0);
    if (!root.contains(range.startContainer) || !root.contains(range.endContainer)) return null;
    var text = root.textContent;
    var start = offsetIn(root, range.startContainer, range.startOffset);
    var end = offsetIn(root, range.endContainer, range.endOffset);
    if (start < 0 || end <= start) return null;
    return [toCodePoints(text, start), toCodePoints(text, end)];
  }

  /* A DOM Range over [start, end) UTF-16 units of `root`'s text (null when out of bounds). */
  function rangeAtUtf16(root, start, end) {
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    var total = 0;
    var range = document.createRange();
    var begun = false;
    var current;
    while ((current = walker.nextNode())) {
      var length = current.nodeValue.length;
      if (!begun && start <= total + length) {
        range.setStart(current, start - total);
        begun = true;
      }
      if (begun && end <= total + length) {
        range.setEnd(current, end - total);
        return range;
      }
      total += length;
    }
    return null;
  }

  /* A DOM Range over the code-point span [start, end) of `root`'s text. */
  function rangeOf(root, start, end) {
    var text = root.textContent;
    return rangeAtUtf16(root, toUtf16(text, start), toUtf16(text, end));
  }

  window.AssaySpans = {
    toCodePoints: toCodePoints, toUtf16: toUtf16, selectionSpan: selectionSpan,
    rangeAtUtf16: rangeAtUtf16, rangeOf: rangeOf
  };
})();
