// The administration pages' scripts (no inline script: the Content-Security-Policy forbids it).
"use strict";

// A CSV import's progress bar: poll the job's API until it has finished, then reload the page,
// which shows the result and the rows that were not imported.
(function () {
  const job = document.getElementById("import-job");
  if (!job || job.dataset.state === "done" || job.dataset.state === "failed") {
    return;
  }
  const bar = document.getElementById("import-progress");
  const status = document.getElementById("import-status");
  const show = function (name, value) {
    status.querySelector("." + name).textContent = value;
  };
  const poll = function () {
    fetch(job.dataset.api, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (reply) { return reply.json(); })
      .then(function (progress) {
        bar.max = progress.total || 1;
        bar.value = progress.state === "done" ? bar.max : progress.processed;
        bar.textContent = progress.percent + "%";
        ["state", "processed", "total", "imported", "existing", "failed"].forEach(function (name) {
          show(name, progress[name]);
        });
        if (progress.state === "done" || progress.state === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 500);
        }
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  };
  window.setTimeout(poll, 300);
})();
