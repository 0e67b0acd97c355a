// A dataset archive from the browser: ask the page for a signed URL, PUT the file there with a progress bar,
// then queue its ingest and show the ingest's status block (which polls itself with htmx).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const zone = document.querySelector("[data-upload]");
  if (!zone) return;
  const input = zone.querySelector("input[type=file]");
  const bar = zone.querySelector("progress");
  const note = zone.querySelector("[data-note]");
  const csrf = document.body.dataset.csrf;
  const post = (url, body) =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });

  function put(url, file) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("PUT", url);
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.upload.onprogress = (event) => {
        if (event.lengthComputable) bar.value = Math.round((100 * event.loaded) / event.total);
      };
      request.onload = () => (request.status < 300 ? resolve() : reject(new Error(`upload failed: HTTP ${request.status}`)));
      request.onerror = () => reject(new Error("upload failed: the connection broke"));
      request.send(file);
    });
  }

  async function send(file) {
    bar.value = 0;
    note.textContent = `Uploading ${file.name}…`;
    const opened = await post(zone.dataset.upload, { filename: file.name, totalBytes: file.size });
    if (!opened.ok) throw new Error(`the upload was refused (HTTP ${opened.status})`);
    const { sessionId, uploadUrl } = await opened.json();
    await put(uploadUrl, file);
    bar.value = 100;
    note.textContent = `Uploaded ${file.name}; ingesting…`;
    const queued = await post(zone.dataset.ingest, { sessionId });
    if (!queued.ok) throw new Error(`the ingest was refused (HTTP ${queued.status})`);
    document.getElementById("ingest-status").outerHTML = await queued.text();
    htmx.process(document.getElementById("ingest-status"));
  }

  const start = (file) => file && send(file).catch((error) => (note.textContent = error.message));
  input.addEventListener("change", () => start(input.files[0]));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    start(event.dataTransfer.files[0]);
  });
});
