// Keeps the cluster page's table current: reads /api/v1/servers every two seconds and redraws
// the rows (role and VIP, state, load, last probe, version, the enable/disable button).
(function () {
  "use strict";
  var table = document.getElementById("servers");
  if (!table) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var INTERVAL_MS = 2000;

  function cell(text, className) {
    var td = document.createElement("td");
    if (className) { td.className = className; }
    td.textContent = text;
    return td;
  }

  function row(s) {
    var tr = document.createElement("tr");
    tr.dataset.server = s.name;
    tr.appendChild(cell(s.name));
    var role = cell(s.role, "role");
    if (s.holds_vip === true) {
      var vip = document.createElement("span");
      vip.className = "badge vip";
      vip.textContent = "VIP";
      role.appendChild(document.createTextNode(" "));
      role.appendChild(vip);
    } else if (s.holds_vip === false) {
      var standby = document.createElement("small");
      standby.className = "hint";
      standby.textContent = " standby";
      role.appendChild(standby);
    }
    tr.appendChild(role);
    tr.appendChild(cell(s.address + (s.workers > 1 ? " \u00d7" + s.workers : "")));
    var state = cell("", "state");
    var badge = document.createElement("span");
    badge.className = "badge state-" + s.state;
    badge.textContent = s.state;
    state.appendChild(badge);
    if (s.error) {
      var why = document.createElement("small");
      why.className = "hint";
      why.textContent = " " + s.error;
      state.appendChild(why);
    }
    tr.appendChild(state);
    tr.appendChild(cell(Object.keys(s.load).map(function (k) {
      return k.replace(/_/g, " ") + " " + s.load[k];
    }).join(", "), "load"));
    tr.appendChild(cell(s.last_probe ? new Date(s.last_probe).toISOString().substring(11, 19) : "-", "probe"));
    tr.appendChild(cell(s.version || "-", "version"));
    var actions = cell("", "actions");
    tr.appendChild(actions);
    if (!s.can_be_disabled) { return tr; }  // a Call Manager: taken out by stopping it
    var form = document.createElement("form");
    form.method = "post";
    form.action = "/cluster/servers/" + encodeURIComponent(s.name) + (s.enabled ? "/disable" : "/enable");
    var token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = csrf;
    form.appendChild(token);
    var button = document.createElement("button");
    button.type = "submit";
    button.textContent = s.enabled ? "Disable" : "Enable";
    if (s.enabled) { button.className = "danger"; }
    form.appendChild(button);
    actions.appendChild(form);
    return tr;
  }

  function refresh() {
    fetch(table.dataset.api, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (reply) {
        if (reply.status === 401) { window.location.reload(); }
        return reply.ok ? reply.json() : null;
      })
      .then(function (body) {
        if (!body) { return; }
        var tbody = table.tBodies[0];
        var rows = body.servers.map(row);
        tbody.replaceChildren.apply(tbody, rows);
        table.dataset.refreshed = new Date().toISOString();
      })
      .catch(function () { /* the portal restarting: try again next time */ });
  }

  window.setInterval(refresh, INTERVAL_MS);
  refresh();
}());
