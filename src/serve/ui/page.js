// Larder's web page: jobs with live progress (polling /v1/jobs), the repo filter, and
// relative times. Everything from the server is set as text, never parsed as HTML.
(function () {
  'use strict';

  var POLL_MS = 1000;
  var FINISHED_SHOWN = 20;
  var jobsBody = document.getElementById('jobs-body');
  var jobsStatus = document.getElementById('jobs-status');
  var reposBody = document.getElementById('repos-body');
  var box = document.getElementById('q');
  var noMatch = document.getElementById('no-match');
  var repoCount = document.getElementById('repo-count');
  var polls = 0;
  var active = null; // ids of the jobs queued or running at the last poll
  var serverFiltered = box.value.trim() !== '';

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function humanBytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    var value = Number(n) || 0;
    var unit = 0;
    while (value >= 1024 && unit + 1 < units.length) { value /= 1024; unit += 1; }
    return unit === 0 ? value + ' B' : value.toFixed(1) + ' ' + units[unit];
  }

  function ago(unix) {
    var seconds = Math.max(0, Math.round(Date.now() / 1000 - unix));
    if (seconds < 60) return seconds + ' s ago';
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min ago';
    if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ago';
    return Math.floor(seconds / 86400) + ' d ago';
  }

  function timeNode(unix) {
    if (unix === null || unix === undefined) return el('span', 'none', 'never');
    var node = el('time', null, ago(unix));
    var at = new Date(unix * 1000);
    node.dateTime = at.toISOString();
    node.title = at.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
    node.dataset.unix = String(unix);
    return node;
  }

  function refreshTimes() {
    var nodes = document.querySelectorAll('time[data-unix]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = ago(Number(nodes[i].dataset.unix));
    }
  }

  // ---- jobs -------------------------------------------------------------------------------

  function safeState(state) {
    return String(state).replace(/[^a-z_]/g, '');
  }

  function jobRow(job) {
    var spec = job.spec || {};
    var progress = job.progress || { bytes: 0, total: 0 };
    var state = safeState(job.state);
    var row = el('tr', 'job state-' + state);
    row.id = 'job-' + Number(job.id);
    row.dataset.state = state;
    row.dataset.bytes = String(Number(progress.bytes) || 0);
    row.dataset.total = String(Number(progress.total) || 0);
    row.appendChild(el('td', 'id', '#' + job.id + ' ' + job.kind));
    var target = (spec.repo || '?') + (spec.revision ? '@' + spec.revision : '');
    if (spec.type && spec.type !== 'model') target += ' (' + spec.type + ')';
    row.appendChild(el('td', 'target', target));
    var stateCell = el('td', 'state');
    stateCell.appendChild(el('span', 'badge state-' + state, state));
    // Why it failed, as the machine-readable kind (`larder pull --daemon` exits by it).
    if (job.error_kind) stateCell.appendChild(el('code', 'kind', safeState(job.error_kind)));
    if (job.error) stateCell.appendChild(el('div', 'error', job.error));
    row.appendChild(stateCell);
    var progressCell = el('td', 'progress');
    var bar = document.createElement('progress');
    if (progress.total > 0) {
      bar.max = progress.total;
      bar.value = Math.min(progress.bytes, progress.total);
    }
    progressCell.appendChild(bar);
    var text = humanBytes(progress.bytes);
    if (progress.total > 0) {
      text += ' of ' + humanBytes(progress.total) + ' (' +
        Math.floor(100 * progress.bytes / progress.total) + '%)';
    }
    progressCell.appendChild(el('span', 'bytes', ' ' + text));
    row.appendChild(progressCell);
    var updated = el('td', 'updated');
    updated.appendChild(timeNode(job.updated_at));
    row.appendChild(updated);
    return row;
  }

  function isActive(job) {
    return job.state === 'queued' || job.state === 'running';
  }

  function renderJobs(jobs) {
    var running = jobs.filter(isActive);
    var finished = jobs.filter(function (j) { return !isActive(j); })
      .sort(function (a, b) { return b.updated_at - a.updated_at || b.id - a.id; })
      .slice(0, FINISHED_SHOWN);
    var rows = running.concat(finished);
    var fragment = document.createDocumentFragment();
    if (rows.length === 0) {
      var empty = el('tr', 'placeholder');
      var cell = el('td', null, 'No jobs.');
      cell.colSpan = 5;
      empty.appendChild(cell);
      fragment.appendChild(empty);
    }
    rows.forEach(function (job) { fragment.appendChild(jobRow(job)); });
    jobsBody.replaceChildren(fragment);
    var now = new Set(running.map(function (j) { return j.id; }));
    var ended = active !== null && Array.from(active).some(function (id) { return !now.has(id); });
    active = now;
    return ended;
  }

  function poll() {
    fetch('/v1/jobs', { headers: { Accept: 'application/json' }, cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function (jobs) {
        polls += 1;
        document.body.dataset.polls = String(polls);
        jobsStatus.textContent = '';
        if (renderJobs(jobs)) refreshRepos();
      })
      .catch(function (error) {
        jobsStatus.textContent = 'Jobs unavailable: ' + error.message;
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  // ---- repos ------------------------------------------------------------------------------

  var VERDICTS = { allow: 'allowed', review: 'needs review', deny: 'denied' };

  function repoHref(repo) {
    var plural = repo.kind === 'dataset' ? 'datasets' : 'models';
    return '/api/' + plural + '/' + repo.name.split('/').map(encodeURIComponent).join('/');
  }

  function searchText(repo) {
    return [repo.name, repo.kind, repo.licence.id, repo.licence.name].join(' ').toLowerCase();
  }

  function repoRow(repo) {
    var row = el('tr', 'repo');
    row.dataset.kind = repo.kind;
    row.dataset.name = repo.name;
    row.dataset.search = searchText(repo);
    var name = el('td', 'name');
    var link = el('a', null, repo.name);
    link.href = repoHref(repo);
    name.appendChild(link);
    if (repo.kind === 'dataset') { name.append(' '); name.appendChild(el('span', 'tag', 'dataset')); }
    if (repo.gated) { name.append(' '); name.appendChild(el('span', 'tag', 'gated: ' + repo.gated)); }
    if (repo.tracked && repo.tracked.length) {
      name.append(' ');
      name.appendChild(el('span', 'tag tracked', 'tracked: ' + repo.tracked.join(', ')));
    }
    if (repo.track_error) {
      var failed = el('span', 'tag failed', 'check failed');
      failed.title = repo.track_error;
      name.append(' ');
      name.appendChild(failed);
    }
    if (repo.pinned) { name.append(' '); name.appendChild(el('span', 'tag pinned', 'pinned')); }
    row.appendChild(name);
    var revisions = el('td', 'revisions');
    revisions.appendChild(el('span', 'count', repo.revisions));
    revisions.append(' ');
    var refs = el('span', 'refs', repo.refs.length ? repo.refs.join(', ') + ' → ' : '');
    refs.appendChild(el('code', null, repo.commit.slice(0, 10)));
    revisions.appendChild(refs);
    row.appendChild(revisions);
    var size = el('td', 'size', humanBytes(repo.bytes_held));
    size.dataset.bytes = String(repo.bytes_held);
    if (repo.bytes_held < repo.bytes_total) {
      size.append(' ');
      size.appendChild(el('span', 'of', 'of ' + humanBytes(repo.bytes_total)));
    }
    row.appendChild(size);
    var licence = el('td', 'licence');
    var id = el('span', 'licence-id', repo.licence.id);
    id.title = repo.licence.name;
    licence.appendChild(id);
    licence.append(' ');
    var verdict = VERDICTS[repo.licence.verdict] ? repo.licence.verdict : 'unknown';
    var badge = el('span', 'badge verdict-' + verdict, VERDICTS[verdict] || 'unknown');
    badge.dataset.verdict = verdict;
    badge.title = repo.licence.reasons.join('; ');
    licence.appendChild(badge);
    row.appendChild(licence);
    var pulled = el('td', 'pulled');
    pulled.appendChild(timeNode(repo.last_pulled));
    row.appendChild(pulled);
    var checked = el('td', 'checked');
    checked.appendChild(timeNode(repo.last_checked));
    row.appendChild(checked);
    var served = el('td', 'served');
    served.appendChild(timeNode(repo.last_served));
    row.appendChild(served);
    return row;
  }

  function refreshRepos() {
    return fetch('/v1/repos', { headers: { Accept: 'application/json' }, cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function (overview) {
        var fragment = document.createDocumentFragment();
        overview.repos.forEach(function (repo) { fragment.appendChild(repoRow(repo)); });
        reposBody.replaceChildren(fragment);
        serverFiltered = false;
        applyFilter();
      })
      .catch(function () { /* the rows shown stay; the next job end tries again */ });
  }

  function applyFilter() {
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var rows = reposBody.querySelectorAll('tr.repo');
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var text = rows[i].dataset.search || '';
      var match = words.every(function (word) { return text.indexOf(word) !== -1; });
      rows[i].hidden = !match;
      if (match) shown += 1;
    }
    noMatch.hidden = shown > 0;
    repoCount.textContent = String(shown);
    document.body.dataset.filter = words.join(' ');
  }

  box.addEventListener('input', function () {
    var q = box.value.trim();
    history.replaceState(null, '', q ? '?q=' + encodeURIComponent(q) : location.pathname);
    if (serverFiltered) refreshRepos(); else applyFilter();
  });
  box.form.addEventListener('submit', function (event) {
    event.preventDefault();
    applyFilter();
  });

  // `#q=words` fills the box without a round trip to the server (rows a `?q=` left out on the
  // server are fetched first).
  if (location.hash.indexOf('#q=') === 0) {
    box.value = decodeURIComponent(location.hash.slice(3).replace(/\+/g, ' '));
    if (serverFiltered) refreshRepos();
  }
  applyFilter();
  refreshTimes();
  setInterval(refreshTimes, 30000);
  poll();
})();
