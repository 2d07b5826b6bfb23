// The console's only script (the CSP forbids inline ones): CSRF header for htmx requests, the
// copy buttons of connection snippets, the namespace page's reload that never loses typing.
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  try {
    await navigator.clipboard.writeText(source.innerText);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy";
  }
});
// Copy buttons of a value shown once (an API key's secret): the button names its field.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy-target]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copyTarget);
  const status = document.getElementById("copy-status");
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
    if (status) status.textContent = "The secret is in your clipboard.";
  } catch {
    field.select();
    if (status) status.textContent = "Copying was refused: the secret is selected, copy it yourself.";
  }
});
// Namespace detail: only the status section polls. Once it reports the namespace changed under
// the page (data-page-stale names the page's body), reload the body, unless a form on it holds
// unsaved input or the focus: typing is never thrown away, a notice offers the reload instead.
const markDirty = (event) => event.target.form?.setAttribute("data-dirty", "");
document.addEventListener("input", markDirty);
document.addEventListener("change", markDirty);
document.addEventListener("htmx:load", (event) => {
  const status = event.detail.elt;
  if (!(status instanceof Element) || !status.hasAttribute("data-page-stale")) return;
  const body = document.getElementById("namespace-live");
  if (!body) return;
  if (body.querySelector("form[data-dirty], form:focus-within")) {
    status.querySelector("[data-stale-notice]")?.removeAttribute("hidden");
    return;
  }
  htmx.ajax("GET", status.dataset.pageStale, { target: body, swap: "outerHTML" });
});
// Workflow page: "Decode with codec server" posts the page's encoded payloads to the namespace's
// codec server (Temporal's protocol: POST <endpoint>/decode {"payloads": [...]}) from the
// browser; the page's CSP allows that one origin. Results are shown as text, never as markup.
const fromBase64 = (text) => Uint8Array.from(atob(text || ""), (c) => c.charCodeAt(0));
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-codec-decode]");
  if (!button) return;
  const section = button.closest("[data-codec-endpoint]");
  const status = document.getElementById("codec-status");
  const holders = [...document.querySelectorAll("[data-payload]")];
  if (!holders.length) {
    status.textContent = "No encoded payload on this page.";
    return;
  }
  status.textContent = "Decoding…";
  let decoded;
  try {
    const response = await fetch(`${section.dataset.codecEndpoint}/decode`, {
      method: "POST",
      credentials: section.dataset.codecCredentials,
      headers: { "Content-Type": "application/json", "X-Namespace": section.dataset.namespace },
      body: JSON.stringify({ payloads: holders.map((holder) => JSON.parse(holder.dataset.payload)) }),
    });
    if (!response.ok) {
      status.textContent = `The codec server answered HTTP ${response.status}.`;
      return;
    }
    decoded = (await response.json()).payloads || [];
  } catch {
    status.textContent =
      "The codec server could not be reached (is it running, and does it allow this console's origin by CORS?).";
    return;
  }
  holders.forEach((holder, index) => {
    const payload = decoded[index];
    if (!payload) return;
    const encoding = new TextDecoder().decode(fromBase64((payload.metadata || {}).encoding));
    let text = new TextDecoder().decode(fromBase64(payload.data));
    if (encoding === "json/plain") {
      try {
        text = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // Not JSON after all: shown as the text it is.
      }
    }
    const pre = holder.querySelector("pre");
    pre.querySelector("code").textContent = text;
    pre.hidden = false;
  });
  status.textContent = `Decoded ${Math.min(decoded.length, holders.length)} payload(s).`;
});
