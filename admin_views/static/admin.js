/* Aquoris admin: CSRF for scripted requests, confirmations, copy-key buttons and infinite scroll. No CDN. */
(function () {
  'use strict';
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute('content') : '';

  // Every POST form carries the token, including forms rendered by SQLAdmin itself.
  function addToken(form) {
    if ((form.getAttribute('method') || 'get').toLowerCase() !== 'post') return;
    if (form.querySelector('input[name="csrf_token"]')) return;
    var input = document.createElement('input');
    input.type = 'hidden';
    input.name = 'csrf_token';
    input.value = token;
    form.appendChild(input);
  }
  document.querySelectorAll('form').forEach(addToken);
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    addToken(form);
  }, true);
  if (window.jQuery) {
    window.jQuery.ajaxSetup({ headers: { 'X-CSRF-Token': token } });
  }

  // Copy an app's API key: fetched by POST (audited), then written to the clipboard.
  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-copy-key-url]');
    if (!button) return;
    event.preventDefault();
    fetch(button.getAttribute('data-copy-key-url'), {
      method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': token, 'Accept': 'application/json' }
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok && result.body.step_up) { window.location.assign(result.body.step_up); return; }
      if (!result.ok) throw new Error(result.body.error || 'Could not read the key.');
      var key = result.body.key;
      var shown = function () { button.textContent = 'Copied'; button.setAttribute('data-copied', 'true'); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        return navigator.clipboard.writeText(key).then(shown, function () { showKey(button, key); });
      }
      showKey(button, key);
    }).catch(function (error) {
      button.textContent = error.message;
    });
  });

  // Without clipboard access, show the key selected so it can be copied by hand.
  function showKey(button, key) {
    var field = document.createElement('input');
    field.type = 'text';
    field.readOnly = true;
    field.className = 'form-control form-control-sm revealed-key';
    field.value = key;
    button.replaceWith(field);
    field.select();
  }

  // Infinite scroll: when the sentinel comes into view, fetch the next rows (keyset cursor in the URL).
  var sentinel = document.querySelector('[data-next-url]');
  var body = document.querySelector('[data-infinite-rows]');
  if (sentinel && body && 'IntersectionObserver' in window) {
    var loading = false;
    var loadMore = function () {
      var next = sentinel.getAttribute('data-next-url');
      if (loading || !next) return;
      loading = true;
      sentinel.textContent = 'Loading…';
      fetch(next, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } }).then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        var following = response.headers.get('X-Next-Page') || '';
        return response.text().then(function (html) { return { html: html, next: following }; });
      }).then(function (page) {
        body.insertAdjacentHTML('beforeend', page.html);
        sentinel.setAttribute('data-next-url', page.next);
        var shown = document.querySelector('[data-shown-count]');
        if (shown) shown.textContent = body.querySelectorAll('tr[data-row-id]').length.toLocaleString('en-US');
        sentinel.textContent = page.next ? 'Scroll for more' : 'End of list';
        loading = false;
        if (page.next && isVisible(sentinel)) loadMore();
      }).catch(function () {
        sentinel.textContent = 'Could not load more rows. Scroll again to retry.';
        loading = false;
      });
    };
    var isVisible = function (el) {
      var box = el.getBoundingClientRect();
      return box.top < window.innerHeight && box.bottom > 0;
    };
    new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; })) loadMore();
    }, { rootMargin: '200px' }).observe(sentinel);
  }
})();
