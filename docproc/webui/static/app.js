// The docproc web page: screens drawn from the /v1 API with the browser session's API key.
// Every value from the server goes into the page as text (textContent), never as HTML.

const KEY_STORAGE = "docproc.apiKey";
const LIST_LIMIT = 50;
const PAGE_WINDOW = 20;
const POLL_MS = 1000;
const JOB_DONE = new Set(["succeeded", "failed", "cancelled"]);
const BATCH_DONE = new Set(["completed", "failed", "cancelled"]);
const PASSWORD_CODES = new Set(["password_required", "wrong_password"]);
const TASK_NAMES = { summarize: "Summary", ask: "Question", extract: "Extraction" };
const METHODS = [
  ["auto", "Automatic"],
  ["extract_compress", "Key sentences, rewritten by the model"],
  ["extractive", "Key sentences only (no model)"],
  ["abstractive", "Read by the model, part by part"],
];

const main = document.getElementById("main");
const forgetKey = document.getElementById("forget-key");
let screen = new AbortController();
let fieldIds = 0;

class ApiError extends Error {
  constructor(status, code, message, errors) {
    super(message);
    this.status = status;
    this.code = code;
    this.errors = errors ?? [];
  }
}

// ---- DOM helpers -------------------------------------------------------------------------------------------

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

function uid(prefix) {
  fieldIds += 1;
  return `${prefix}-${fieldIds}`;
}

// A labelled control: the label's `for` always points at the control.
function field(label, control, hint) {
  control.id ||= uid("field");
  const hintNode = hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintNode);
}

function errorNode(error) {
  const items = error.errors.map((item) => h("li", {}, `${item.loc.slice(1).join(".") || item.loc.join(".")}: ${item.msg}`));
  return h("div", { class: "error", role: "alert" }, h("p", {}, error.message), items.length ? h("ul", {}, items) : null);
}

function showError(slot, error) {
  if (!(error instanceof ApiError)) throw error;
  slot.replaceChildren(errorNode(error));
}

function announce(text) {
  document.getElementById("announce").textContent = text;
}

function show(title, ...nodes) {
  document.title = `${title} · docproc`;
  main.replaceChildren(...nodes.filter(Boolean));
  main.querySelector("h1")?.setAttribute("tabindex", "-1");
  main.querySelector("h1")?.focus({ preventScroll: true });
}

const numberFormat = new Intl.NumberFormat("en");
const count = (n) => numberFormat.format(n);

function bytes(n) {
  const units = ["bytes", "KB", "MB", "GB"];
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return unit ? `${n.toFixed(1)} ${units[unit]}` : `${n} bytes`;
}

function when(iso) {
  if (!iso) return "";
  // The API's times are UTC; a time without a zone is read as UTC too.
  const date = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(iso) ? iso : `${iso}Z`);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

// ---- API ---------------------------------------------------------------------------------------------------

function authHeaders(extra = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function send(path, { method = "GET", json, form, signal, accept } = {}) {
  const headers = authHeaders(accept ? { Accept: accept } : {});
  let body = form;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, "unreachable", "The server could not be reached. Check that docproc is running, then try again.");
  }
  if (response.ok) return response;
  let detail = {};
  try {
    detail = (await response.json()).detail ?? {};
  } catch {
    // Not the API's envelope (a proxy's page, say): the status alone has to do.
  }
  throw new ApiError(
    response.status,
    detail.code ?? `http_${response.status}`,
    detail.message ?? `The server answered ${response.status} ${response.statusText}.`.trim(),
    detail.errors,
  );
}

async function api(path, options) {
  const response = await send(path, options);
  return response.status === 204 ? null : response.json();
}

// ---- API key -----------------------------------------------------------------------------------------------

function keyScreen(refused) {
  const input = h("input", { type: "password", name: "api-key", autocomplete: "off", required: true });
  const slot = h("div");
  if (refused) slot.append(errorNode(new ApiError(401, "unauthorized", "The saved API key was not accepted; enter another.")));
  const form = h(
    "form",
    { class: "card narrow", onsubmit: submit },
    field("API key", input, "Kept in this browser tab until you close it; sent with every request."),
    h("button", { type: "submit" }, "Continue"),
    slot,
  );
  async function submit(event) {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    try {
      await api("/v1/documents?limit=1");
    } catch (error) {
      sessionStorage.removeItem(KEY_STORAGE);
      if (error instanceof ApiError && error.status === 401) {
        error.message = "That API key was not accepted. Check it and try again.";
      }
      showError(slot, error);
      input.focus();
      return;
    }
    route();
  }
  show("API key", h("h1", {}, "API key"), h("p", {}, "This server asks for an API key. You see only the documents, jobs and batches of your key."), form);
  input.focus();
}

forgetKey.addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  location.hash = "#/";
  route();
});

// ---- Documents ---------------------------------------------------------------------------------------------

async function documentsScreen(signal, offset = 0) {
  const list = await api(`/v1/documents?limit=${LIST_LIMIT}&offset=${offset}`, { signal });
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const input = h("input", { type: "file", id: "files", multiple: true, class: "visually-hidden", onchange: () => uploadAll([...input.files]) });
  const drop = h(
    "div",
    { class: "drop" },
    input,
    h("label", { for: input.id }, h("strong", {}, "Drop files here"), " or ", h("span", { class: "pick" }, "choose files")),
    h("p", { class: "hint" }, "PDF, plain text, Markdown or HTML; several at once."),
  );
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    uploadAll([...event.dataTransfer.files]);
  });

  let table = documentsTable(list, signal);
  show(
    "Documents",
    h("h1", {}, "Documents"),
    h("section", { "aria-labelledby": "upload-heading" }, h("h2", { id: "upload-heading", class: "visually-hidden" }, "Upload"), drop, uploads),
    table,
  );

  async function refresh() {
    const fresh = documentsTable(await api(`/v1/documents?limit=${LIST_LIMIT}&offset=${offset}`, { signal }), signal);
    table.replaceWith(fresh);
    table = fresh;
  }

  async function uploadAll(files) {
    input.value = "";
    // One at a time: the server parses PDFs in a few processes at most.
    for (const file of files) await upload(file, uploads.appendChild(h("li")), refresh);
  }
}

async function upload(file, row, refresh, password) {
  const state = h("span", { class: "state" }, "Uploading…");
  const slot = h("div");
  row.replaceChildren(h("span", { class: "name" }, file.name), " ", state, slot);
  const form = new FormData();
  form.append("file", file);
  if (password !== undefined) form.append("password", password);
  let response;
  try {
    response = await send("/v1/documents", { method: "POST", form });
  } catch (error) {
    state.textContent = "Not uploaded.";
    showError(slot, error);
    if (PASSWORD_CODES.has(error.code)) slot.append(passwordForm(file, row, refresh));
    return;
  }
  const uploaded = await response.json();
  state.replaceChildren(
    response.status === 201 ? "Uploaded: " : "Already uploaded: ",
    h("a", { href: `#/documents/${uploaded.id}` }, `${count(uploaded.pages)} pages, ${count(uploaded.tokens)} tokens`),
  );
  row.classList.add("done");
  announce(`${file.name} uploaded.`);
  await refresh();
}

function passwordForm(file, row, refresh) {
  const input = h("input", { type: "password", autocomplete: "off", required: true });
  const form = h(
    "form",
    { class: "inline", onsubmit: (event) => { event.preventDefault(); upload(file, row, refresh, input.value); } },
    field(`Password for ${file.name}`, input),
    h("button", { type: "submit" }, "Open and upload"),
  );
  queueMicrotask(() => input.focus());
  return form;
}

function documentsTable(list, signal) {
  const selected = new Set();
  const batchSlot = h("div");
  const batchButton = h("button", { type: "submit", disabled: true }, "Create batch");
  const rows = list.data.map((doc) => {
    const errorSlot = h("div");
    const remove = h("button", { type: "button", class: "danger", "aria-label": `Delete ${doc.filename}` }, "Delete");
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete ${doc.filename}? Its finished jobs and results are kept.`)) return;
      try {
        await api(`/v1/documents/${doc.id}`, { method: "DELETE" });
      } catch (error) {
        showError(errorSlot, error);
        return;
      }
      announce(`${doc.filename} deleted.`);
      route();
    });
    const pick = h("input", { type: "checkbox", "aria-label": `Select ${doc.filename}` });
    pick.addEventListener("change", () => {
      pick.checked ? selected.add(doc.id) : selected.delete(doc.id);
      batchButton.disabled = !selected.size;
      batchButton.textContent = selected.size ? `Create batch of ${selected.size}` : "Create batch";
    });
    return h(
      "tr",
      {},
      h("td", { "data-label": "Select" }, pick),
      h("td", { "data-label": "Name", class: "wrap" }, h("a", { href: `#/documents/${doc.id}` }, doc.filename)),
      h("td", { "data-label": "Pages", class: "num" }, count(doc.pages)),
      h("td", { "data-label": "Tokens", class: "num" }, count(doc.tokens)),
      h("td", { "data-label": "Size", class: "num" }, bytes(doc.size_bytes)),
      h("td", { "data-label": "Uploaded" }, when(doc.created_at)),
      h("td", { "data-label": "Actions" }, h("div", {}, remove, errorSlot)),
    );
  });
  if (!list.data.length) {
    return h("section", { class: "listing" }, h("h2", {}, "Your documents"), h("p", { class: "empty" }, "No documents yet. Upload one above."));
  }
  const options = summarizeFields();
  const batchForm = h(
    "form",
    { class: "card", onsubmit: createBatch },
    h("h3", {}, "Summarize the selected documents as a batch"),
    h("div", { class: "row" }, options.fields),
    batchButton,
    batchSlot,
  );
  async function createBatch(event) {
    event.preventDefault();
    try {
      const batch = await api("/v1/batches", { method: "POST", json: { document_ids: [...selected], options: options.values() } });
      location.hash = `#/batches/${batch.id}`;
    } catch (error) {
      showError(batchSlot, error);
    }
  }
  return h(
    "section",
    { class: "listing" },
    h("h2", {}, "Your documents"),
    h(
      "table",
      { class: "list" },
      h("caption", { class: "visually-hidden" }, "Your documents"),
      h("thead", {}, h("tr", {}, ["Select", "Name", "Pages", "Tokens", "Size", "Uploaded", "Actions"].map(headerCell))),
      h("tbody", {}, rows),
    ),
    pager(list, "#/documents"),
    batchForm,
  );
}

const NUMERIC_COLUMNS = new Set(["Pages", "Tokens", "Size", "Done"]);

function headerCell(name) {
  return h("th", { scope: "col", class: NUMERIC_COLUMNS.has(name) ? "num" : null }, name);
}

function pager(list, base) {
  if (list.total <= list.limit) return null;
  const last = Math.min(list.offset + list.limit, list.total);
  const previous = list.offset > 0 ? h("a", { href: `${base}?offset=${Math.max(0, list.offset - list.limit)}` }, "Previous") : null;
  const next = last < list.total ? h("a", { href: `${base}?offset=${last}` }, "Next") : null;
  return h("nav", { class: "pager", "aria-label": "Pages of the list" }, previous, h("span", {}, `${list.offset + 1}–${last} of ${count(list.total)}`), next);
}

// The summarize options, shared by a document's form and the batch form.
function summarizeFields() {
  const maxWords = h("input", { type: "number", min: "10", max: "2000", step: "1", placeholder: "150", inputmode: "numeric" });
  const method = h("select", {}, METHODS.map(([value, label]) => h("option", { value }, label)));
  const instructions = h("textarea", { rows: "2", maxlength: "2000", placeholder: "For example: focus on costs and dates." });
  return {
    fields: [field("Most words", maxWords), field("Method", method), field("Instructions (optional)", instructions)],
    values() {
      const options = { method: method.value };
      if (maxWords.value) options.max_words = Number(maxWords.value);
      if (instructions.value.trim()) options.instructions = instructions.value.trim();
      return options;
    },
  };
}

// ---- A document --------------------------------------------------------------------------------------------

async function documentScreen(id, citedPage, signal) {
  const doc = await api(`/v1/documents/${id}`, { signal });
  const jobs = await api(`/v1/jobs?document_id=${id}&limit=${LIST_LIMIT}`, { signal });
  const summarize = summarizeFields();
  const question = h("textarea", { rows: "3", required: true, placeholder: "What does the report say about costs?" });
  const schema = h("textarea", { rows: "6", required: true, class: "code", spellcheck: "false", placeholder: '{"type": "object", "properties": {"total_cost": {"type": "number"}}}' });
  const extractInstructions = h("input", { type: "text", placeholder: "Optional" });

  const tools = h(
    "div",
    { class: "tools" },
    taskForm(doc, "Summarize", summarize.fields, "Summarize", () => ({ task: "summarize", options: summarize.values() })),
    taskForm(doc, "Ask a question", [field("Question", question)], "Ask", () => ({ task: "ask", options: { question: question.value.trim() } })),
    taskForm(doc, "Extract data", [field("JSON schema of the data", schema, "The fields to find, as a JSON Schema."), field("Instructions", extractInstructions)], "Extract", () => {
      let parsed;
      try {
        parsed = JSON.parse(schema.value);
      } catch (error) {
        throw new ApiError(0, "invalid_schema", `The schema is not valid JSON: ${error.message}`);
      }
      const options = { schema: parsed };
      if (extractInstructions.value.trim()) options.instructions = extractInstructions.value.trim();
      return { task: "extract", options };
    }),
    jobsSection(jobs),
  );
  const pages = h("section", { class: "pages", "aria-labelledby": "pages-heading" }, h("h2", { id: "pages-heading" }, "Pages"));
  show(
    doc.filename,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Documents"), " / "),
    h("h1", { class: "wrap" }, doc.filename),
    h(
      "dl",
      { class: "facts" },
      fact("Pages", count(doc.pages)),
      fact("Tokens", count(doc.tokens)),
      fact("Size", bytes(doc.size_bytes)),
      fact("Type", doc.content_type),
      fact("Uploaded", when(doc.created_at)),
    ),
    h("div", { class: "doc-grid" }, tools, pages),
  );
  await showPages(pages, doc, citedPage ?? 1, citedPage !== null, signal);
}

function fact(term, value) {
  return h("div", {}, h("dt", {}, term), h("dd", {}, value));
}

function taskForm(doc, title, fields, action, body) {
  const slot = h("div");
  const heading = uid("task");
  return h(
    "form",
    {
      class: "card",
      "aria-labelledby": heading,
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const job = await api("/v1/jobs", { method: "POST", json: { document_id: doc.id, ...body() } });
          location.hash = `#/jobs/${job.id}`;
        } catch (error) {
          showError(slot, error);
        }
      },
    },
    h("h2", { id: heading }, title),
    fields,
    h("button", { type: "submit" }, action),
    slot,
  );
}

function jobsSection(jobs) {
  const body = jobs.data.length
    ? h(
        "ul",
        { class: "jobs" },
        jobs.data.map((job) =>
          h("li", {}, h("a", { href: `#/jobs/${job.id}` }, TASK_NAMES[job.task] ?? job.task), " ", statusBadge(job.status), h("span", { class: "hint" }, ` ${when(job.created_at)}`)),
        ),
      )
    : h("p", { class: "empty" }, "No jobs yet.");
  return h("section", { class: "card" }, h("h2", {}, "Jobs"), body);
}

async function showPages(section, doc, page, cited, signal) {
  const first = page - ((page - 1) % PAGE_WINDOW);
  const last = first + PAGE_WINDOW - 1;
  let list;
  try {
    list = await api(`/v1/documents/${doc.id}/pages?first=${first}&last=${last}&limit=${PAGE_WINDOW}`, { signal });
  } catch (error) {
    if (signal.aborted) throw error;
    if (error.code === "not_found" && error.message === "Not Found.") {
      error.message = "This server does not serve page text yet.";
    }
    section.append(errorNode(error));
    return;
  }
  const nav = h("nav", { class: "pager", "aria-label": "Pages of the document" });
  if (first > 1) nav.append(h("a", { href: `#/documents/${doc.id}/pages/${first - PAGE_WINDOW}` }, `Pages ${first - PAGE_WINDOW}–${first - 1}`));
  if (last < doc.pages) nav.append(h("a", { href: `#/documents/${doc.id}/pages/${last + 1}` }, `Pages ${last + 1}–${Math.min(last + PAGE_WINDOW, doc.pages)}`));
  section.append(
    ...list.data.map((item) =>
      h(
        "article",
        { class: item.number === page && cited ? "page cited" : "page", id: `page-${item.number}`, tabindex: "-1", "aria-labelledby": `page-${item.number}-heading` },
        h("h3", { id: `page-${item.number}-heading` }, `Page ${item.number}`),
        h("div", { class: "text" }, item.text || "(no text on this page)"),
      ),
    ),
    nav,
  );
  if (cited) {
    const target = document.getElementById(`page-${page}`);
    target?.scrollIntoView({ block: "start" });
    target?.focus({ preventScroll: true });
  }
}

// ---- A job -------------------------------------------------------------------------------------------------

function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

async function jobScreen(id, signal) {
  let job = await api(`/v1/jobs/${id}`, { signal });
  const doc = job.document_id ? await api(`/v1/documents/${job.document_id}`, { signal }).catch(() => null) : null;
  const status = h("p", { class: "status-line" });
  const bar = h("progress", { id: uid("progress"), max: 1, value: 0 });
  const barText = h("span", { class: "hint" });
  const cancelSlot = h("div");
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel job");
  cancel.addEventListener("click", async () => {
    try {
      update(await api(`/v1/jobs/${id}/cancel`, { method: "POST" }));
      announce("Cancel requested.");
    } catch (error) {
      showError(cancelSlot, error);
    }
  });
  const failure = h("div");
  const result = h("section", { class: "result", "aria-live": "polite" });
  const asked = job.options?.question ?? job.options?.instructions;

  function update(next) {
    job = next;
    status.replaceChildren("Status: ", statusBadge(job.status), job.attempts > 1 ? ` (attempt ${job.attempts})` : "");
    const { tokens_done: done, tokens_total: total } = job.progress;
    bar.max = Math.max(total, 1);
    bar.value = job.status === "succeeded" ? bar.max : done;
    barText.textContent = total ? `${count(done)} of ${count(total)} tokens (${Math.floor((100 * done) / total)}%)` : job.status === "queued" ? "Waiting for a worker" : "Starting";
    cancel.hidden = JOB_DONE.has(job.status);
    if (job.error) failure.replaceChildren(errorNode(new ApiError(0, job.error.code, `The job failed: ${job.error.message} (${job.error.code})`)));
    else if (job.status === "cancelled") failure.replaceChildren(h("p", { role: "status" }, "The job was cancelled before it finished."));
  }

  show(
    `${TASK_NAMES[job.task] ?? job.task} job`,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Documents"), " / ", doc ? h("a", { href: `#/documents/${doc.id}`, class: "wrap" }, doc.filename) : "deleted document", " / "),
    h("h1", {}, `${TASK_NAMES[job.task] ?? job.task}${doc ? ` of ${doc.filename}` : ""}`),
    asked ? h("p", { class: "asked" }, asked) : null,
    h("div", { class: "card" }, status, h("div", { class: "field" }, h("label", { for: bar.id }, "Progress"), bar, barText), cancel, cancelSlot, failure),
    result,
  );
  update(job);
  if (!JOB_DONE.has(job.status)) job = await follow(id, signal, update);
  if (job.status === "succeeded") {
    result.replaceChildren(...resultView(job, await api(`/v1/jobs/${id}/result`, { signal })));
    announce("The result is ready.");
  }
}

// Live progress: the job's Server-Sent Events read with fetch (EventSource cannot send the key), or polling
// where the server has no event stream.
async function follow(id, signal, update) {
  let response = null;
  try {
    response = await send(`/v1/jobs/${id}/events`, { signal, accept: "text/event-stream" });
  } catch (error) {
    if (signal.aborted) throw error;
  }
  if (response?.body) {
    const last = await readEvents(response.body, update);
    if (last && JOB_DONE.has(last.status)) return last;
  }
  for (;;) {
    const job = await api(`/v1/jobs/${id}`, { signal });
    update(job);
    if (JOB_DONE.has(job.status)) return job;
    await sleep(POLL_MS, signal);
  }
}

// A small SSE parser: events end at a blank line; `data:` lines are joined; comments (`:`) are skipped.
async function readEvents(body, onJob) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let carry = "";
  let last = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      // A "\r\n" may be split between reads: hold a trailing "\r" back.
      const text = carry + value;
      carry = text.endsWith("\r") ? "\r" : "";
      buffer += text.slice(0, text.length - carry.length).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const data = buffer
          .slice(0, end)
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        buffer = buffer.slice(end + 2);
        if (data) {
          last = JSON.parse(data);
          onJob(last);
        }
      }
    }
  } catch (error) {
    if (!(error instanceof TypeError || error.name === "AbortError")) throw error;
    // The connection dropped: the caller polls from here.
  }
  return last;
}

function pageLink(docId, page, label) {
  return docId ? h("a", { href: `#/documents/${docId}/pages/${page}` }, label) : h("span", {}, label);
}

function paragraphs(text) {
  return text.split(/\n{2,}/).map((part) => h("p", {}, part));
}

function resultView(job, result) {
  const docId = job.document_id;
  const nodes = [];
  if (result.answer) nodes.push(h("h2", {}, "Answer"), ...paragraphs(result.answer));
  if (result.summary) nodes.push(h("h2", {}, "Summary"), ...paragraphs(result.summary));
  if (result.data !== undefined && result.data !== null) nodes.push(h("h2", {}, "Extracted data"), h("pre", { class: "code" }, JSON.stringify(result.data, null, 2)));
  if (result.citations?.length) {
    nodes.push(
      h("h2", {}, "Citations"),
      h("ol", { class: "citations" }, result.citations.map((cite) => h("li", {}, pageLink(docId, cite.page, `Page ${cite.page}`), cite.quote ? h("blockquote", {}, cite.quote) : null))),
    );
  }
  if (result.source_pages?.length) {
    nodes.push(
      h("h2", {}, "Cited pages"),
      h("ul", { class: "source-pages" }, result.source_pages.map(([first, last]) => h("li", {}, pageLink(docId, first, first === last ? `Page ${first}` : `Pages ${first}–${last}`)))),
    );
  }
  if (result.thinking) nodes.push(h("details", {}, h("summary", {}, "The model's thinking"), h("pre", { class: "thinking" }, result.thinking)));
  const facts = [fact("Model", result.model)];
  if (result.method) facts.push(fact("Method", result.method));
  if (result.replaced_sentences) facts.push(fact("Sentences replaced by the check", count(result.replaced_sentences)));
  if (result.usage) facts.push(fact("Tokens in / out", `${count(result.usage.input_tokens)} / ${count(result.usage.output_tokens)}`));
  nodes.push(h("dl", { class: "facts" }, facts));
  return nodes;
}

// ---- Batches -----------------------------------------------------------------------------------------------

function finished(batch) {
  const counts = batch.request_counts;
  return counts.completed + counts.failed + counts.cancelled;
}

async function batchesScreen(signal, offset = 0) {
  const list = await api(`/v1/batches?limit=${LIST_LIMIT}&offset=${offset}`, { signal });
  const body = list.data.length
    ? h(
        "table",
        { class: "list" },
        h("caption", { class: "visually-hidden" }, "Your batches"),
        h("thead", {}, h("tr", {}, ["Batch", "Status", "Done", "Created"].map(headerCell))),
        h(
          "tbody",
          {},
          list.data.map((batch) =>
            h(
              "tr",
              {},
              h("td", { "data-label": "Batch", class: "wrap" }, h("a", { href: `#/batches/${batch.id}` }, batch.id)),
              h("td", { "data-label": "Status" }, statusBadge(batch.status)),
              h("td", { "data-label": "Done", class: "num" }, `${finished(batch)} of ${batch.request_counts.total}`),
              h("td", { "data-label": "Created" }, when(batch.created_at)),
            ),
          ),
        ),
      )
    : h("p", { class: "empty" }, "No batches yet. Select documents on the ", h("a", { href: "#/" }, "documents"), " screen to summarize them as a batch.");
  show("Batches", h("h1", {}, "Batches"), body, pager(list, "#/batches"));
}

async function batchScreen(id, signal) {
  let batch = await api(`/v1/batches/${id}`, { signal });
  const status = h("p", { class: "status-line" });
  const bar = h("progress", { id: uid("progress"), max: 1, value: 0 });
  const barText = h("span", { class: "hint" });
  const counts = h("dl", { class: "facts" });
  const items = h("section");
  const actionSlot = h("div");
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel batch");
  const download = h("button", { type: "button" }, "Download results (JSONL)");
  cancel.addEventListener("click", async () => {
    try {
      await render(await api(`/v1/batches/${id}/cancel`, { method: "POST" }));
    } catch (error) {
      showError(actionSlot, error);
    }
  });
  download.addEventListener("click", async () => {
    try {
      const blob = await (await send(`/v1/batches/${id}/results`)).blob();
      const link = h("a", { href: URL.createObjectURL(blob), download: `${id}.jsonl` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (error) {
      showError(actionSlot, error);
    }
  });

  async function render(next) {
    batch = next;
    const total = batch.request_counts.total;
    status.replaceChildren("Status: ", statusBadge(batch.status));
    bar.max = Math.max(total, 1);
    bar.value = finished(batch);
    barText.textContent = `${finished(batch)} of ${total} requests finished`;
    counts.replaceChildren(
      fact("Completed", count(batch.request_counts.completed)),
      fact("Failed", count(batch.request_counts.failed)),
      fact("Cancelled", count(batch.request_counts.cancelled)),
      fact("Created", when(batch.created_at)),
    );
    cancel.hidden = BATCH_DONE.has(batch.status) || batch.status === "cancelling";
    const text = await (await send(`/v1/batches/${id}/results`, { signal })).text();
    const lines = text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    items.replaceChildren(
      h("h2", {}, "Requests"),
      h(
        "table",
        { class: "list" },
        h("caption", { class: "visually-hidden" }, "Requests of the batch"),
        h("thead", {}, h("tr", {}, ["Request", "Status", "Job"].map(headerCell))),
        h(
          "tbody",
          {},
          lines.map((line) =>
            h(
              "tr",
              {},
              h("td", { "data-label": "Request", class: "wrap" }, line.custom_id ?? ""),
              h("td", { "data-label": "Status" }, statusBadge(line.status), line.error ? h("span", { class: "hint" }, ` ${line.error.message ?? line.error.code ?? ""}`) : null),
              h("td", { "data-label": "Job" }, line.job_id ? h("a", { href: `#/jobs/${line.job_id}` }, "Open") : ""),
            ),
          ),
        ),
      ),
    );
  }

  show(
    "Batch",
    h("p", { class: "crumbs" }, h("a", { href: "#/batches" }, "Batches"), " / "),
    h("h1", { class: "wrap" }, `Batch ${batch.id}`),
    h("div", { class: "card" }, status, h("div", { class: "field" }, h("label", { for: bar.id }, "Progress"), bar, barText), counts, h("div", { class: "actions" }, download, cancel), actionSlot),
    items,
  );
  await render(batch);
  while (!BATCH_DONE.has(batch.status)) {
    await sleep(POLL_MS, signal);
    await render(await api(`/v1/batches/${id}`, { signal }));
  }
}

// ---- Routing -----------------------------------------------------------------------------------------------

async function route() {
  screen.abort();
  screen = new AbortController();
  const { signal } = screen;
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const offset = Math.max(0, Number(new URLSearchParams(query).get("offset")) || 0);
  const section = parts[0] === "batches" ? "batches" : "documents";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  forgetKey.hidden = !sessionStorage.getItem(KEY_STORAGE);
  try {
    if (parts.length === 0 || (parts[0] === "documents" && parts.length === 1)) await documentsScreen(signal, offset);
    else if (parts[0] === "documents") await documentScreen(parts[1], parts[2] === "pages" ? Number(parts[3]) || 1 : null, signal);
    else if (parts[0] === "jobs" && parts[1]) await jobScreen(parts[1], signal);
    else if (parts[0] === "batches" && parts[1]) await batchScreen(parts[1], signal);
    else if (parts[0] === "batches") await batchesScreen(signal, offset);
    else show("Not found", h("h1", {}, "Not found"), h("p", {}, "There is nothing at this address. ", h("a", { href: "#/" }, "Go to your documents.")));
  } catch (error) {
    if (signal.aborted) return;
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) return keyScreen(Boolean(sessionStorage.getItem(KEY_STORAGE)));
    show("Error", h("h1", {}, "Something went wrong"), errorNode(error), h("p", {}, h("a", { href: "#/" }, "Back to your documents")));
  }
}

window.addEventListener("hashchange", route);
route();
