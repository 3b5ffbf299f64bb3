/* The payment screen (templates/billing/pay_account.html and billing/pay/).
 *
 * The server decides what is charged. This script only:
 *   0. when the amount or the tip changes, asks the server for the new total (pay_quote) and shows it in place, on
 *      the total and on the Pay button, so the card typed below stays where it is;
 *   1. mounts stripe.js's Card Element, so the card is typed into Stripe's field and never reaches our server;
 *   2. on "Pay" (the form's submit), posts the payer's choices (not an amount) to start the payment: the server re-quotes and answers
 *      with the intent's client secret and the total it will charge;
 *   3. asks stripe.js for a payment method id for the card and has the server confirm the intent with that id;
 *   4. runs 3-D Secure in the page when the bank asks (stripe.confirmCardPayment with the client secret);
 *   5. goes to the return address, which records the result and opens the receipt.
 * A decline keeps the form: the message is read out, and the next "Pay" starts a fresh intent on the same payment.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("pay-config");
  var form = document.getElementById("payment-form");
  var mountPoint = document.getElementById("card-element");
  if (!configNode || !form || !mountPoint) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var text = config.messages;
  var payButton = document.getElementById("pay-button");
  var progress = document.getElementById("pay-progress");
  var errorBox = document.getElementById("pay-error");

  function say(message) {
    if (progress) {
      progress.textContent = message || "";
    }
  }

  function fail(message) {
    say("");
    if (errorBox) {
      errorBox.textContent = message;
      errorBox.hidden = !message;
    }
  }

  function cardUnavailable() {
    var notice = document.createElement("p");
    notice.className = "form-alert";
    notice.setAttribute("role", "alert");
    notice.textContent = text.unavailable;
    mountPoint.replaceChildren(notice);
    if (payButton) {
      payButton.hidden = true;
    }
  }

  if (typeof window.Stripe !== "function" || !config.publishableKey) {
    cardUnavailable();
    return;
  }

  var stripe = window.Stripe(config.publishableKey);
  var card = stripe.elements().create("card");
  card.mount(mountPoint);
  // Real Stripe mounts a titled iframe with its own labelled fields. localstripe's stand-in mounts bare inputs with
  // only a placeholder; give those an accessible name so the page stays usable with a screen reader in tests too.
  Array.prototype.forEach.call(mountPoint.querySelectorAll("input:not([aria-label])"), function (input) {
    input.setAttribute("aria-label", input.getAttribute("placeholder") || "card");
    input.setAttribute("autocomplete", "off");
  });
  card.on("change", function (event) {
    fail(event && event.error ? event.error.message : "");
  });

  if (!payButton) {
    return;
  }

  var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var busy = false;
  var stale = false; // after "balance_changed": this page's figures are out of date until a reload

  // The total the page shows (and the Pay button names). Pay sends only choices; if the server's total differs from
  // this one, nothing is confirmed and the payer sees the new total first.
  var shownTotal = config.quoteTotal;
  var quoteBox = document.getElementById("pay-quote");
  var quoteRows = document.getElementById("quote-rows");
  var quoteTotal = document.getElementById("quote-total");
  var pendingQuote = null; // the promise of the latest quote request, so Pay waits for it
  var quoteTimer = null;
  var quoteSerial = 0;
  var quoteProblem = ""; // why the current choices cannot be quoted (the server's words), or ""

  function showQuote(answer) {
    var rows = answer.rows.map(function (row) {
      var line = document.createElement("div");
      var label = document.createElement("dt");
      var value = document.createElement("dd");
      label.textContent = row[0];
      value.textContent = row[1];
      line.appendChild(label);
      line.appendChild(value);
      return line;
    });
    quoteRows.replaceChildren.apply(quoteRows, rows);
    quoteTotal.textContent = answer.totalDisplay;
    payButton.textContent = answer.payLabel;
    quoteBox.hidden = false;
    shownTotal = answer.total;
  }

  function showQuoteErrors(errors) {
    shownTotal = null;
    quoteBox.hidden = true;
    var names = Object.keys(errors || {});
    quoteProblem = names.map(function (name) { return errors[name]; }).join(" ") || text.checkCard;
    fail(quoteProblem);
  }

  function requestQuote() {
    var serial = ++quoteSerial;
    pendingQuote = post(config.quoteUrl, new FormData(form)).then(function (answer) {
      if (serial !== quoteSerial) {
        return pendingQuote; // a newer change was made meanwhile: its answer counts
      }
      if (answer.redirect) {
        window.location.assign(answer.redirect);
        return null;
      }
      if (answer.errors) {
        showQuoteErrors(answer.errors);
        return null;
      }
      quoteProblem = "";
      fail("");
      showQuote(answer);
      return answer;
    });
    return pendingQuote;
  }

  var resolveWaiting = null;

  function choicesChanged() {
    // A burst of keystrokes makes one request; a Pay pressed meanwhile waits for its answer.
    clearTimeout(quoteTimer);
    if (!resolveWaiting) {
      pendingQuote = new Promise(function (resolve) {
        resolveWaiting = resolve;
      });
    }
    quoteTimer = setTimeout(function () {
      var resolve = resolveWaiting;
      resolveWaiting = null;
      resolve(requestQuote().catch(function () {
        return null; // a lost answer: Pay's own start re-checks the total on the server
      }));
    }, 250);
  }

  Array.prototype.forEach.call(
    form.querySelectorAll("[name=amount_choice], [name=other_amount], [name=tip_percent]"),
    function (input) {
      input.addEventListener("input", choicesChanged);
      input.addEventListener("change", choicesChanged);
    }
  );

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    }).then(function (response) {
      return response.json().then(function (data) {
        data.httpStatus = response.status;
        return data;
      });
    });
  }

  function fields(values) {
    var body = new FormData();
    Object.keys(values).forEach(function (key) {
      body.append(key, values[key]);
    });
    return body;
  }

  function payerMessage(error) {
    // stripe.js errors about the card (type card_error / validation_error) are written for payers; anything else
    // (a network failure, a script error) gets our plain message.
    if (error && (error.type === "card_error" || error.type === "validation_error" || error.code) && error.message) {
      return error.message;
    }
    return text.checkCard;
  }

  function paymentMethodId(email) {
    // Real stripe.js: a PaymentMethod from the Card Element. localstripe's stand-in has no createPaymentMethod (it
    // returns nothing); there a token's card id works as the payment method. Either way only an id reaches us.
    var created = typeof stripe.createPaymentMethod === "function"
      ? stripe.createPaymentMethod({ type: "card", card: card, billing_details: email ? { email: email } : {} })
      : Promise.resolve(undefined);
    return Promise.resolve(created).then(function (result) {
      if (result && result.error) {
        return { error: result.error };
      }
      if (result && result.paymentMethod) {
        return { id: result.paymentMethod.id };
      }
      return stripe.createToken(card).then(function (tokenResult) {
        if (!tokenResult || tokenResult.error || !tokenResult.token) {
          return { error: tokenResult ? tokenResult.error : null };
        }
        return { id: tokenResult.token.card.id };
      });
    });
  }

  function offerReload() {
    if (!errorBox) {
      return;
    }
    var reload = document.createElement("button");
    reload.type = "button";
    reload.className = "button";
    reload.textContent = text.reload;
    reload.addEventListener("click", function () {
      window.location.reload();
    });
    errorBox.appendChild(document.createTextNode(" "));
    errorBox.appendChild(reload);
    reload.focus();
  }

  function finish(answer, intentId) {
    if (answer.status === "succeeded" || answer.status === "processing") {
      say(text.paid);
      window.location.assign(answer.next || config.returnUrl + "?payment_intent=" + encodeURIComponent(intentId));
      return true;
    }
    if (answer.status === "balance_changed") {
      // Less is owed now than this page quoted (autopay or another payment came in): nothing was charged, and this
      // page's total is out of date, so Pay stays off until the payer reloads.
      stale = true;
      fail(answer.message);
      offerReload();
      return false;
    }
    if (answer.error || answer.status === "declined" || answer.status === "failed") {
      fail(answer.error || answer.message || text.checkCard);
      if (answer.redirect) {
        window.location.assign(answer.redirect);
        return true;
      }
      return false;
    }
    fail(text.checkCard);
    return false;
  }

  function pay(event) {
    if (event) {
      event.preventDefault(); // with JavaScript, the submit pays here; without it, it re-quotes on the server
    }
    if (busy || stale) {
      return;
    }
    busy = true;
    payButton.disabled = true;
    fail("");
    var intentId = null;
    var navigating = false;

    // The page came back from the server with an error on the amount: quote the choices as they are now first.
    var quoted = shownTotal === null && pendingQuote === null ? requestQuote() : pendingQuote;
    Promise.resolve(quoted)
      .then(function () {
        if (shownTotal === null) {
          throw { payer: quoteProblem || text.checkCard };
        }
        say(text.working);
        return post(config.startUrl, new FormData(form));
      })
      .then(function (started) {
        if (started.error) {
          throw { payer: started.error, redirect: started.redirect };
        }
        if (started.total !== shownTotal) {
          // The server's figure wins: show it, and let the payer press Pay again for that total.
          return requestQuote().then(function () {
            throw { payer: text.changed };
          });
        }
        intentId = started.paymentIntent;
        var email = (form.querySelector("[name=receipt_email]") || {}).value || "";
        if (email.indexOf("*") !== -1) {
          email = ""; // the address on file, shown masked: the server knows it, stripe.js need not
        }
        // A saved card (signed-in payers) is named by our own row id; otherwise stripe.js makes an id for the new card.
        var saved = form.querySelector("[name=saved_card]:checked");
        var chosen = saved && saved.value ? Promise.resolve({ saved: saved.value }) : paymentMethodId(email);
        return chosen.then(function (method) {
          if (method.error !== undefined) {
            throw { payer: payerMessage(method.error) };
          }
          var choice = method.saved ? { saved_card: method.saved } : { payment_method: method.id };
          choice.payment_intent = intentId;
          return post(config.confirmUrl, fields(choice));
        }).then(function (answer) {
          if (answer.status !== "requires_action") {
            return answer;
          }
          say(text.authenticating);
          // The server confirmed the intent; stripe.js only runs the bank's check. Current stripe.js calls that
          // handleNextAction; localstripe's stand-in (and older stripe.js) does it in confirmCardPayment.
          var authenticate = typeof stripe.handleNextAction === "function"
            ? stripe.handleNextAction({ clientSecret: answer.clientSecret })
            : stripe.confirmCardPayment(answer.clientSecret);
          return Promise.resolve(authenticate).then(function () {
            // Whatever the bank said, ask our server: it records the intent's state and answers with the next step.
            return post(config.confirmUrl, fields({ payment_intent: intentId }));
          });
        });
      })
      .then(function (answer) {
        navigating = finish(answer, intentId);
      })
      .catch(function (problem) {
        fail(problem && problem.payer ? problem.payer : text.network);
        if (problem && problem.redirect) {
          navigating = true;
          window.location.assign(problem.redirect);
        }
      })
      .then(function () {
        busy = false;
        if (!navigating) {
          payButton.disabled = stale;
          if (!errorBox || errorBox.hidden) {
            say("");
          }
        }
      });
  }

  form.addEventListener("submit", pay);
})();
