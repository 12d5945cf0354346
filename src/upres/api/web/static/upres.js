// The upres page: a client of the same HTTP API as any other. The API key lives
// in sessionStorage (this tab only) and travels in the Authorization header,
// never in a URL. Plain JavaScript, no library, no build step.
"use strict";

(() => {
  const KEY_SLOT = "upres.apiKey";
  const POLL_MS = 1500;
  const CREDITS_EVERY = 4; // polls between credit checks: stays far under the rate limit
  const $ = (id) => document.getElementById(id);

  let apiKey = null;
  let selected = null;
  let uploaded = null;
  let comparing = null;
  let stretch = 1;  // how many times longer the compared result runs than its source
  let polls = 0;
  let timer = null;
  const rows = new Map();

  function errorText(data, status) {
    if (data && data.error) return data.error.message + " (" + data.error.code + ")";
    return "The server answered HTTP " + status;
  }

  async function api(method, path, body) {
    const init = { method, headers: { Authorization: "Bearer " + apiKey } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error(errorText(data, response.status));
    return data;
  }

  // XMLHttpRequest rather than fetch: it reports upload progress, and sends the
  // File straight from disk.
  function upload(file) {
    const bar = $("upload-progress");
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/uploads?filename=" + encodeURIComponent(file.name));
      xhr.setRequestHeader("Authorization", "Bearer " + apiKey);
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
      xhr.onload = () => {
        bar.hidden = true;
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON: use the status */ }
        if (xhr.status === 200) resolve(data);
        else reject(new Error("Upload refused: " + errorText(data, xhr.status)));
      };
      xhr.onerror = () => { bar.hidden = true; reject(new Error("The upload did not reach the server")); };
      bar.value = 0;
      bar.hidden = false;
      xhr.send(file);
    });
  }

  async function videoUrl() {
    const file = $("video-file").files[0];
    if (file) {
      const id = [file.name, file.size, file.lastModified].join("/");
      if (!uploaded || uploaded.id !== id) {
        say("Uploading " + file.name + "…");
        uploaded = { id, url: (await upload(file)).url };
      }
      return uploaded.url;
    }
    const url = $("video-url").value.trim();
    if (url) return url;
    throw new Error("Choose a video file or enter a video URL.");
  }

  function request(url) {
    const params = { upscale_factor: $("factor").value };
    if ($("network").value) params.network = $("network").value;
    if (!$("denoise-field").hidden && $("denoise").value) params.denoise = Number($("denoise").value);
    const pace = $("frame-rate").selectedOptions[0].dataset;
    if (pace.frameRate) params.frame_rate = Number(pace.frameRate);
    if (pace.slowmo) params.slowmo = Number(pace.slowmo);
    return { model: "topaz-video-upscale", video_urls: [url], model_params: params };
  }

  // The line about the chosen network, and its denoise levels when it has a choice
  // of them (every network has level 0, the network as it is).
  function showNetwork() {
    const option = $("network").selectedOptions[0];
    $("network-about").textContent = option.dataset.about;
    const levels = option.dataset.levels ? option.dataset.levels.split(",") : [];
    const denoise = $("denoise");
    denoise.replaceChildren(new Option("Default", ""), ...levels.map((level) => new Option(level, level)));
    $("denoise-field").hidden = levels.length <= 1;
  }

  function say(text) { $("form-status").textContent = text; }
  function complain(text) { $("form-error").textContent = text; }

  // The frame rate a task chose, in words ("" when it keeps the source's).
  function pace(info) {
    const parts = [];
    if (info.frame_rate) parts.push(info.frame_rate + " fps");
    if (info.slowmo) parts.push(info.slowmo + "× slow motion");
    return parts.join(", ");
  }

  function speed(task) {
    return task.status === "processing" && task.fps ? task.fps.toFixed(1) + " fps" : "";
  }

  function timeLeft(task) {
    if (!task.task_info.can_cancel) return "";
    const left = task.task_info.estimated_time;
    return left > 0 ? "about " + duration(left) : "estimating…";
  }

  function duration(seconds) {
    if (seconds < 90) return seconds + " s";
    const minutes = Math.round(seconds / 60);
    return minutes < 90 ? minutes + " min" : (minutes / 60).toFixed(1) + " h";
  }

  async function run(button, action) {
    complain("");
    button.disabled = true;
    try { await action(); } catch (e) { say(""); complain(e.message); } finally { button.disabled = false; }
  }

  async function estimate() {
    const url = await videoUrl();
    say("Estimating…");
    const e = await api("POST", "/v1/videos/generations/estimate", request(url));
    const retimed = pace(e);
    say("Estimate: " + e.credits + " credits for " + e.video_duration + " s of video at " +
        e.upscale_factor + "× with " + e.network + (retimed ? " at " + retimed : "") +
        ", about " + duration(e.estimated_time) + " of processing.");
  }

  async function upscale() {
    const url = await videoUrl();
    say("Submitting…");
    const task = await api("POST", "/v1/videos/generations", request(url));
    say("Task " + task.id + " created: " + task.usage.credits_reserved + " credits reserved.");
    selected = task.id;
    await refresh(true);
  }

  function cell(row, index) { return row.children[index]; }

  function newRow(task) {
    const row = document.createElement("tr");
    row.dataset.id = task.id;
    for (let i = 0; i < 9; i++) row.appendChild(document.createElement("td"));
    const created = new Date(task.created * 1000);
    cell(row, 0).textContent = created.toLocaleTimeString([], { timeStyle: "short" });
    cell(row, 0).title = created.toLocaleString();
    cell(row, 1).textContent = task.id;
    cell(row, 1).className = "id";
    cell(row, 2).textContent = [task.upscale_factor + "×", pace(task.task_info)].filter(Boolean).join(" · ");
    cell(row, 3).textContent = task.task_info.network || "";
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.setAttribute("aria-label", "Progress of " + task.id);
    cell(row, 5).appendChild(bar);
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", (e) => { e.stopPropagation(); cancelTask(task.id, cancel); });
    cell(row, 8).appendChild(cancel);
    row.addEventListener("click", () => { selected = task.id; refresh(false); });
    return row;
  }

  function updateRow(row, task) {
    cell(row, 4).textContent = task.status;
    cell(row, 4).className = "status-" + task.status;
    cell(row, 5).firstChild.value = task.progress;
    cell(row, 6).textContent = speed(task);
    cell(row, 7).textContent = timeLeft(task);
    cell(row, 8).firstChild.hidden = !task.task_info.can_cancel;
    row.classList.toggle("selected", task.id === selected);
  }

  function renderTable(tasks) {
    const body = $("task-table").tBodies[0];
    const seen = new Set();
    tasks.forEach((task, index) => {
      seen.add(task.id);
      let row = rows.get(task.id);
      if (!row) { row = newRow(task); rows.set(task.id, row); }
      if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
      updateRow(row, task);
    });
    for (const [id, row] of rows) if (!seen.has(id)) { row.remove(); rows.delete(id); }
    $("no-tasks").hidden = tasks.length > 0;
  }

  async function cancelTask(id, button) {
    button.disabled = true;
    try { await api("POST", "/v1/tasks/" + id + "/cancel"); } catch (e) { complain(e.message); }
    await refresh(true);
  }

  function statusLine(task) {
    switch (task.status) {
      case "pending": return "Waiting for a worker · " + timeLeft(task);
      case "processing":
        return ["Upscaling: " + task.progress + " %", speed(task), timeLeft(task) + " left"]
          .filter(Boolean).join(" · ").replace("estimating… left", "estimating the time left");
      case "completed": return "Completed: " + task.task_info.video_duration + " s of video at " + task.upscale_factor + "×";
      case "cancelled": return "Cancelled";
      default: return "Failed";
    }
  }

  function renderView(task) {
    $("task-view").hidden = false;
    $("view-title").textContent = "Task " + task.id;
    $("view-status").textContent = statusLine(task);
    $("view-progress").value = task.progress;
    const refunded = " The " + task.usage.credits_reserved + " credits reserved were refunded.";
    $("view-error").textContent = task.error ? task.error.message.replace(/\.?$/, ".") + refunded : "";
    showPreview(task);
    const done = task.status === "completed" && task.results && task.results.length > 0;
    $("compare-box").hidden = !done;
    if (done && comparing !== task.id) showCompare(task);
  }

  // The worker renews the preview every few seconds under the same name; the
  // link is signed afresh on every poll, so each poll loads the newest one.
  function showPreview(task) {
    const image = $("preview");
    if (!task.preview_url) {
      $("preview-box").hidden = true;
      image.removeAttribute("src");
      return;
    }
    const probe = new Image();
    probe.onload = () => { image.src = probe.src; $("preview-box").hidden = selected !== task.id; };
    probe.src = task.preview_url;
  }

  function showCompare(task) {
    comparing = task.id;
    const result = $("compare-result");
    const source = $("compare-source");
    result.src = task.playable_url || task.results[0];
    $("playable-note").hidden = !task.playable_url;
    source.src = task.source_url || "";
    // Each video plays at its own frame rate; they are kept in step by time. A
    // slow-motion result lasts slowmo times its source, which plays that much slower.
    stretch = task.task_info.slowmo || 1;
    source.defaultPlaybackRate = 1 / stretch;
    source.playbackRate = 1 / stretch;
    $("download").href = task.results[0];
    $("play-pause").textContent = "Pause";
    result.play().catch(() => { $("play-pause").textContent = "Play"; });
  }

  function syncVideos() {
    const result = $("compare-result");
    const source = $("compare-source");
    result.addEventListener("loadedmetadata", () => {
      if (result.videoWidth) $("compare").style.aspectRatio = result.videoWidth + " / " + result.videoHeight;
    });
    result.addEventListener("play", () => { source.play().catch(() => {}); });
    result.addEventListener("pause", () => source.pause());
    result.addEventListener("seeked", () => { source.currentTime = result.currentTime / stretch; });
    result.addEventListener("timeupdate", () => {
      const at = result.currentTime / stretch;
      if (Math.abs(source.currentTime - at) > 0.15) source.currentTime = at;
    });
    $("play-pause").addEventListener("click", () => {
      if (result.paused) { result.play(); $("play-pause").textContent = "Pause"; }
      else { result.pause(); $("play-pause").textContent = "Play"; }
    });
    $("split").addEventListener("input", (e) => {
      const at = Number(e.target.value);
      $("compare-clip").style.clipPath = "inset(0 " + (100 - at) + "% 0 0)";
      $("divider").style.left = at + "%";
    });
  }

  async function refreshCredits() {
    const credits = await api("GET", "/v1/credits");
    $("credits").textContent = credits.remaining_credits + " credits";
  }

  async function refresh(withCredits) {
    try {
      const list = await api("GET", "/v1/tasks?limit=20");
      renderTable(list.data);
      const task = list.data.find((t) => t.id === selected);
      if (task) renderView(task);
      if (withCredits || polls % CREDITS_EVERY === 0) await refreshCredits();
    } catch (e) {
      complain(e.message);
    }
  }

  function poll() {
    polls += 1;
    refresh(false).finally(() => { if (apiKey) timer = setTimeout(poll, POLL_MS); });
  }

  function showSignedIn(on) {
    for (const id of ["new-task", "tasks"]) $(id).hidden = !on;
    $("signout").hidden = !on;
    if (!on) {
      $("task-view").hidden = true;
      $("credits").textContent = "";
    }
  }

  async function signIn(key) {
    apiKey = key;
    try {
      await refreshCredits();
    } catch (e) {
      apiKey = null;
      sessionStorage.removeItem(KEY_SLOT);
      $("signin-status").textContent = "That key was refused: " + e.message;
      showSignedIn(false);
      return;
    }
    sessionStorage.setItem(KEY_SLOT, key);
    $("signin-status").textContent = "Signed in.";
    showSignedIn(true);
    clearTimeout(timer);
    poll();
  }

  function signOut() {
    apiKey = null;
    sessionStorage.removeItem(KEY_SLOT);
    clearTimeout(timer);
    $("api-key").value = "";
    $("signin-status").textContent = "Signed out.";
    showSignedIn(false);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("api-key").value.trim()); });
    $("signout").addEventListener("click", signOut);
    $("estimate").addEventListener("click", () => run($("estimate"), estimate));
    $("task-form").addEventListener("submit", (e) => { e.preventDefault(); run($("upscale"), upscale); });
    $("video-file").addEventListener("change", () => { uploaded = null; });
    $("network").addEventListener("change", showNetwork);
    showNetwork();
    syncVideos();
    const kept = sessionStorage.getItem(KEY_SLOT);
    if (kept) { $("api-key").value = kept; signIn(kept); }
  });
})();
