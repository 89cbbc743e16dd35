// The export page: each download link takes the filter form's values along (without JavaScript
// the links still download, with the batch the page was opened with and no other filter).
(function () {
  "use strict";
  const form = document.getElementById("export-filters");
  if (!form) return;
  const itemOnly = new Set(["aggregation", "gold"]); // refused on per-judgment exports: sent only with items
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-export]");
    if (!link) return;
    const url = new URL(link.href, window.location.href);
    for (const [name, value] of new FormData(form).entries()) {
      if (!value) continue;
      if (itemOnly.has(name) && url.searchParams.get("granularity") !== "item") continue;
      // datetime-local has no zone: the page says UTC, so the value is sent as UTC.
      url.searchParams.set(name, form.elements[name].type === "datetime-local" ? `${value}:00Z` : value);
    }
    event.preventDefault();
    window.location.assign(url.toString());
  });
})();
