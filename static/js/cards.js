/* Saving a card (templates/accounts/payment_method_add.html).
 *
 * 1. mounts stripe.js's Card Element, so the card is typed into Stripe's field and never reaches our server;
 * 2. on "Save card", asks our server for a SetupIntent (its client secret) and lets stripe.confirmCardSetup confirm
 *    it, including the bank's check when it asks for one;
 * 3. submits the form with the SetupIntent's id only; the server reads the SetupIntent back, checks it and saves.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("card-config");
  var form = document.getElementById("card-form");
  var mountPoint = document.getElementById("card-element");
  if (!configNode || !form || !mountPoint) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var text = config.messages;
  var saveButton = document.getElementById("card-save");
  var progress = document.getElementById("card-progress");
  var errorBox = document.getElementById("card-error");

  function say(message) {
    progress.textContent = message || "";
  }

  function fail(message) {
    say("");
    errorBox.textContent = message || "";
    errorBox.hidden = !message;
  }

  if (typeof window.Stripe !== "function" || !config.publishableKey) {
    fail(text.unavailable);
    return;
  }

  var stripe = window.Stripe(config.publishableKey);
  var card = stripe.elements().create("card");
  card.mount(mountPoint);
  // localstripe's stand-in mounts bare inputs with only a placeholder; name them for screen readers (real Stripe
  // mounts a titled iframe with labelled fields).
  Array.prototype.forEach.call(mountPoint.querySelectorAll("input:not([aria-label])"), function (input) {
    input.setAttribute("aria-label", input.getAttribute("placeholder") || "card");
    input.setAttribute("autocomplete", "off");
  });
  card.on("change", function (event) {
    fail(event && event.error ? event.error.message : "");
  });
  saveButton.hidden = false;

  var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var busy = false;

  function startSetup() {
    return fetch(config.setupUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    }).then(function (response) {
      if (response.redirected || !(response.headers.get("Content-Type") || "").includes("json")) {
        // The sign-in got too old while the page was open: go and confirm it, then come back here.
        window.location.reload();
        throw { silent: true };
      }
      return response.json().then(function (data) {
        if (!response.ok || data.error) {
          throw { payer: data.error || text.unavailable };
        }
        return data.clientSecret;
      });
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) {
      return;
    }
    busy = true;
    saveButton.disabled = true;
    fail("");
    say(text.working);
    startSetup()
      .then(function (clientSecret) {
        return stripe.confirmCardSetup(clientSecret, { payment_method: { card: card } });
      })
      .then(function (result) {
        if (!result || result.error || !result.setupIntent) {
          var error = result && result.error;
          throw { payer: (error && error.message) || text.checkCard };
        }
        form.querySelector("[name=setup_intent]").value = result.setupIntent.id;
        form.submit();
      })
      .catch(function (problem) {
        busy = false;
        saveButton.disabled = false;
        if (problem && problem.silent) {
          return;
        }
        fail(problem && problem.payer ? problem.payer : text.network);
      });
  });
})();
