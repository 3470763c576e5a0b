// The console's keyboard shortcuts. Served as a file (the Content-Security-
// Policy allows no inline script); the pages work without it.
//   queue:  j / k move the selection, Enter opens the selected appeal
//   appeal: j / k next / previous pending appeal, u uphold, o overturn
(function () {
  "use strict";
  function typing(e) {
    var t = e.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.appeal-row")); }
  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var i = all.findIndex(function (r) { return r.classList.contains("selected"); });
    if (i >= 0) { all[i].classList.remove("selected"); }
    i = Math.max(0, Math.min(all.length - 1, i + step));
    all[i].classList.add("selected");
    var link = all[i].querySelector("a");
    if (link) { link.focus(); }
  }
  function go(id) {
    var a = document.getElementById(id);
    if (a) { window.location.assign(a.href); }
  }
  function focusForm(id) {
    var f = document.getElementById(id);
    if (!f) { return; }
    f.scrollIntoView({block: "center"});
    var first = f.querySelector("input[type=radio], textarea");
    if (first) { first.focus(); }
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) { return; }
    var queue = document.getElementById("queue");
    switch (e.key) {
    case "j": if (queue) { move(1); } else { go("next"); } break;
    case "k": if (queue) { move(-1); } else { go("prev"); } break;
    case "u": focusForm("uphold-form"); break;
    case "o": focusForm("overturn-form"); break;
    default: return;
    }
    e.preventDefault();
  });
})();
