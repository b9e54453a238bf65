// Loom's page behaviour. Everything is delegated from `document`, so fragments swapped in
// by htmx work without re-binding. No inline scripts (the Content-Security-Policy forbids them).
(function () {
  "use strict";

  const csrf = () => {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  };
  const debounce = (fn, ms) => { let t; return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); }; };
  const flash = (html) => { const f = document.getElementById("flash"); if (f) f.innerHTML = html; };

  // ---- small things -----------------------------------------------------------------------
  document.addEventListener("click", (e) => {
    const confirmer = e.target.closest("[data-confirm]");
    if (confirmer && !window.confirm(confirmer.dataset.confirm)) { e.preventDefault(); e.stopImmediatePropagation(); return; }
    const toggle = e.target.closest("[data-toggle]");
    if (toggle) document.getElementById(toggle.dataset.toggle).classList.toggle("open");
    if (e.target.closest("[data-dismiss]")) e.target.closest(".alert").remove();
    const tab = e.target.closest("[data-tab]");
    if (tab) tab.parentElement.querySelectorAll("[data-tab]").forEach((b) => b.classList.toggle("active", b === tab));
  }, true);

  document.addEventListener("change", (e) => {
    if (e.target.matches("[data-select-all]")) {
      e.target.closest("table").querySelectorAll("input[name=ids]").forEach((c) => { c.checked = e.target.checked; });
    }
  });

  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form.matches("[data-save-scheme]")) form.querySelector("[name=query]").value = location.search.slice(1);
  });

  // ---- live forms: show_if / required_if and inline validation, judged by the server ---------
  const touched = new WeakMap();
  const judge = debounce((form) => {
    const url = form.dataset.validate;
    if (!url) return;
    fetch(url, { method: "POST", body: new FormData(form), headers: { "X-CSRFToken": csrf(), "HX-Request": "true" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((verdict) => {
        if (!verdict) return;
        form.querySelectorAll("fieldset[data-section]").forEach((section) => {
          section.hidden = verdict.hidden_sections.includes(Number(section.dataset.section));
        });
        form.querySelectorAll(".form-field[data-field]").forEach((wrap) => {
          const name = wrap.dataset.field;
          wrap.hidden = verdict.hidden.includes(name);
          const req = wrap.querySelector(".req");
          if (req) req.hidden = !verdict.required.includes(name);
          const seen = touched.get(form) || new Set();
          if (seen.has(name)) {
            const slot = wrap.querySelector(".field-error");
            const messages = verdict.errors[name] || [];
            if (slot) slot.textContent = messages.join(" ");
            wrap.classList.toggle("has-error", messages.length > 0);
          }
        });
      })
      .catch(() => {});
  }, 250);

  const noteTouched = (e) => {
    const form = e.target.closest("form[data-validate]");
    if (!form) return;
    const wrap = e.target.closest("[data-field]");
    if (wrap) {
      const seen = touched.get(form) || new Set();
      seen.add(wrap.dataset.field);
      touched.set(form, seen);
    }
    judge(form);
  };
  document.addEventListener("focusout", noteTouched);   // inline validation on blur
  document.addEventListener("change", noteTouched);     // live show_if / required_if

  // a form that comes back with errors (422, 409): bring the first problem into view
  document.addEventListener("htmx:afterSettle", (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.matches("form[data-validate]")) return;
    const bad = form.querySelector("[aria-invalid=true]");
    if (bad) bad.focus();
    else if (form.querySelector(".alert")) form.querySelector(".alert").scrollIntoView({ block: "center" });
  });

  // ---- lookups: type-ahead over records one may read -----------------------------------------
  const search = debounce((box, term) => {
    const url = box.dataset.lookupUrl + "&q=" + encodeURIComponent(term);
    fetch(url, { headers: { "HX-Request": "true" } }).then((r) => r.text()).then((html) => {
      const results = box.querySelector(".lookup-results");
      results.innerHTML = html;
      results.hidden = false;
    });
  }, 250);

  document.addEventListener("input", (e) => {
    if (!e.target.matches(".lookup-text")) return;
    const box = e.target.closest(".lookup");
    if (!e.target.value.trim()) { box.querySelector("input[type=hidden]").value = ""; }
    search(box, e.target.value.trim());
  });
  document.addEventListener("focusin", (e) => {
    if (e.target.matches(".lookup-text")) search(e.target.closest(".lookup"), e.target.value.trim());
  });
  const choose = (option) => {
    const box = option.closest(".lookup");
    if (!option.dataset.id) return;
    box.querySelector("input[type=hidden]").value = option.dataset.id;
    box.querySelector(".lookup-text").value = option.dataset.title;
    box.querySelector(".lookup-results").hidden = true;
    box.querySelector("input[type=hidden]").dispatchEvent(new Event("change", { bubbles: true }));
  };
  document.addEventListener("mousedown", (e) => {
    const option = e.target.closest(".lookup-options [data-id]");
    if (option) { e.preventDefault(); choose(option); }
    else document.querySelectorAll(".lookup-results").forEach((r) => { if (!r.contains(e.target)) r.hidden = true; });
  });
  document.addEventListener("keydown", (e) => {
    if (!e.target.matches(".lookup-text, .lookup-options [data-id]")) return;
    const box = e.target.closest(".lookup");
    const options = [...box.querySelectorAll(".lookup-options [data-id]")];
    const at = options.indexOf(document.activeElement);
    if (e.key === "ArrowDown" && options.length) { e.preventDefault(); options[Math.min(at + 1, options.length - 1)].focus(); }
    else if (e.key === "ArrowUp" && options.length) { e.preventDefault(); (at > 0 ? options[at - 1] : box.querySelector(".lookup-text")).focus(); }
    else if (e.key === "Enter" && at >= 0) { e.preventDefault(); choose(options[at]); box.querySelector(".lookup-text").focus(); }
    else if (e.key === "Escape") { box.querySelector(".lookup-results").hidden = true; }
  });

  // ---- lines: add and remove rows ---------------------------------------------------------------
  document.addEventListener("click", (e) => {
    const add = e.target.closest("[data-add-line]");
    if (add) {
      const editor = add.closest("[data-lines]");
      const body = editor.querySelector("tbody");
      const next = Math.max(-1, ...[...body.querySelectorAll("input[name$='-id']")].map(
        (i) => parseInt(i.name.split("-").slice(-2)[0], 10))) + 1;
      const html = editor.querySelector("template").innerHTML.replaceAll("__i__", String(next));
      body.insertAdjacentHTML("beforeend", html);
      body.lastElementChild.querySelector("input:not([type=hidden]), select")?.focus();
    }
    const remove = e.target.closest("[data-remove-line]");
    if (remove) {
      const form = remove.closest("form");
      remove.closest("tr").remove();
      if (form) judge(form);
    }
  });

  // ---- kanban: drag a card to another lane --------------------------------------------------------
  let dragged = null;
  document.addEventListener("dragstart", (e) => {
    const card = e.target.closest(".kcard");
    if (!card) return;
    dragged = card;
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.dataset.id);
  });
  document.addEventListener("dragover", (e) => { if (dragged && e.target.closest(".lane")) e.preventDefault(); });
  document.addEventListener("drop", (e) => {
    const lane = e.target.closest(".lane");
    if (!dragged || !lane) return;
    e.preventDefault();
    const card = dragged;
    dragged = null;
    const board = lane.closest("[data-board]");
    const body = new FormData();
    body.append("value", lane.dataset.value);
    body.append("version", card.dataset.version);
    fetch(board.dataset.moveUrl + card.dataset.id + "/move", {
      method: "POST", body, headers: { "X-CSRFToken": csrf(), "HX-Request": "true" },
    }).then((r) => {
      if (r.ok) {
        lane.querySelector(".cards").appendChild(card);
        card.dataset.version = String(parseInt(card.dataset.version, 10) + 1);
        // the lanes' counts and totals come from the server: redraw the board
        if (window.htmx) window.htmx.ajax("GET", location.pathname + location.search, { target: board, select: "[data-board]", swap: "outerHTML" });
      } else {
        r.text().then(flash);
      }
    });
  });
})();
