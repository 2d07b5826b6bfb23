// The console's only script (the CSP forbids inline ones): CSRF header for htmx requests and
// the copy buttons of connection snippets.
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
