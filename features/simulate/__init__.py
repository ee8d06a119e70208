"""Deterministic simulator of a B2B lead funnel, with a known ground truth.

The simulator writes the four tables the pipeline reads (``leads``, ``accounts``,
``activities``, ``conversions``) plus a ``ground_truth`` table that is never a model
input. Because every outcome is drawn from a probability the simulator knows, evaluation
can report the *oracle* AUC: the best ranking any model could reach on the same
snapshots (:func:`oracle_probability`).

Generative model (times are days since ``start``; the data end is ``start + months``):

Accounts
    About ``n_leads / 4`` companies. Industry has skewed frequencies (Software and
    Manufacturing common, Energy rare), region is skewed (NA about half) and the
    country is drawn within the region. ``employee_count`` is lognormal (median about
    60, heavy tail: most companies are small, about 1 % have 5000+ employees, 4 % of
    leads work at one) with industry-specific offsets; ``annual_revenue`` is
    employees times a lognormal revenue-per-employee whose median depends on the
    industry.

Leads
    Creation dates follow growth over the period (about +65 %), month seasonality
    (dips in August and December, a Christmas trough) and a weekday pattern; the time
    of day follows local business hours of the region (timestamps are UTC). Leads
    attach to accounts with probability rising with company size. Seniority depends
    on company size (founders at small firms), the department on the seniority, and
    the job title is drawn from variants consistent with both. Lead source is skewed.
    Email uses the company's domain or a free-mail domain (more likely for students
    and small companies); about 3 % of human addresses (half of the bots') are
    invalid and bounce.

Latent quantities (in ``ground_truth``)
    ``fit_score`` (log-odds scale) adds effects of seniority, department (Marketing,
    Executive, Sales and revenue Operations buy), ICP industry, size (a mid-market sweet
    spot: tiny firms have no need yet, the largest buy from incumbents), a seniority x
    size interaction (founders at small firms buy, CEOs of large ones delegate to their
    managers), region and free mail, plus a little unobserved noise: fit is almost
    fully observable from the lead's attributes. ``intent`` (latent buying interest)
    rises with fit, depends on the lead source and has a moderate private component,
    which behaviour reveals (web, pricing and email rates rise steeply with intent).
    About 2.5 % of leads are bots: bursts of page and pricing views seconds apart at
    any hour, spam forms, email link scanners; they never convert.

Conversion: a two-stage process with an honest oracle
    A lead enters a *buying episode* with probability ``p_episode`` (logistic in
    intent, whose coefficient differs by region: strongest in APAC, weakest in LATAM,
    and in fit). The episode starts ``S`` days after creation, lognormal with median
    ``55 * exp(-0.3 * intent)`` (sigma 1.6: most start within months, a long tail
    later), and ends with a decision ``R`` days later, Erlang(3, scale) with a scale
    growing with company size (median 11 days at 1-10 employees, 19 at 51-200, 53 at
    5000+: enterprise deals take longer, so how long ago a lead showed intent means
    different things by size). The decision is a win with probability ``p_win``
    (logistic in fit, intent, a bonus for a VP or director at an ICP-sized company
    with high intent, the lead source (warm introductions from referrals and partners
    close more often for the same interest, outbound and syndicated leads less) and
    regional offsets). ``p_convert = p_episode * p_win`` is the
    probability used for the lead's outcome; the episode intercept is calibrated so
    that 14 % of human leads would convert given unlimited time (about 10 % do within
    the data, as late conversions are censored; the latent delay has a median of
    about 75 days, the observed one about 55). During an episode the lead shows buying behaviour
    (frequent sessions heavy in pricing and demo pages, demo requests, trials,
    contact forms, more email opens and webinars; its start is a distinctive burst of
    sessions within days, with demo requests, trials and sales contacts soon after;
    one episode in 25 leaves little trace), so high-intent activity intensifies in the
    weeks before ``converted_at``. After a loss the lead goes quiet (5 % of its web
    rate, a tenth of its email opens); after a win activities stop a few weeks later
    (the lead becomes a customer).

Buying groups (``simulate(..., buying_groups=True)``; off by default, so the default world
is the one before buying groups existed, table for table)
    Each lead has a buying-group persona (``features.personas.DEFAULT_PERSONAS``: economic
    buyer, technical evaluator, champion, end user, from seniority and department; students
    and assistants have none). A lead's win log-odds rise by 0.3 per distinct persona its
    account already had (counting itself) when it arrived, beyond the first and up to four,
    centred over the human leads so the conversion rate stays on target: multi-threaded
    deals close more often. Counting only leads created up to the lead keeps the oracle
    point-in-time. A third of the private intent variance is shared by the account's
    leads (a buying project at the company), so colleagues' outcomes are correlated and
    the independence a roll-up of lead probabilities assumes does not hold. The ground
    truth records ``persona``, ``buying_group_personas`` and ``buying_group_effect``.

Activities (about 55 per lead)
    Web sessions (1-4 events minutes apart) come from a creation burst that decays
    within days, a baseline rate (rising with intent) that decays with lead age
    towards a plateau, random research bursts, and the buying episode. Researchers
    (students, hands-on engineers and analysts) browse and download far more and
    often sign up for a trial without ever buying; session
    times are thinned by weekday, month and regional business-hour modulation.
    Email campaigns (weekly newsletter, monthly product update, promotions, some
    regional) produce opens (rising with intent, declining with lead age), clicks (a
    fraction of opens, each followed by a page view; the security gateways of some
    larger companies, like most bots, open and click every email within a minute),
    hard bounces (invalid
    addresses at the first send, job changes later; no email activity follows) and
    unsubscribes (likewise). Webinars are registered for days before the event and
    sometimes attended. Inbound leads have a creation activity exactly at
    ``created_at`` (form, download or webinar registration). No activity is before
    ``created_at`` or at/after the data end, and ``other`` is never emitted.

Sales process (:func:`simulate_sales`, a separate step)
    Given the MQLs a scoring product handed over, reps of the lead's territory accept or
    reject each (reasons from the lead's latent state: spam, no contact, existing
    customer, duplicate, bad fit, no budget or bad timing, other; a lognormal response
    delay around an SLA); accepted leads go on to SQL, opportunity, and won at the ground
    truth's conversion time or lost at its decision (or after a stall), with delays on the
    decision scale of the company's size. Its ``truth`` keeps every draw, so funnel rates
    computed from the dispositions can be checked exactly. :func:`oracle_mqls` gives MQLs
    without a model.

Presets (``features.simulate.presets``, ``leadscore simulate --preset``)
    A preset chooses the number of leads, the window, the regions companies are in
    (``region_weights``) and the long-run conversion share (``target_conversion``) of a
    kind of company; the world's model stays the same.

Drift (``simulate(..., drift=...)``)
    :class:`SourceShift` (more paid search and syndication from a month on) and
    :class:`LowFitFlood` (a campaign of students and tiny firms in the last months) re-draw
    a share of the later leads with a generator of their own, so earlier leads are those
    of the undrifted simulation; the ground truth marks the drifted leads.

Why the oracle is an upper bound: every activity at time ``u`` is drawn from the lead's
latent state at ``u`` (attributes, intent, whether a buying episode has started or
been decided) plus independent noise. Given the latent state at ``as_of``, the future
outcome is therefore independent of everything observable before ``as_of``, so the
oracle probability, which conditions on that latent state, ranks at least as well as
any model of the observable tables (up to sampling noise in a finite evaluation).

Modules, each importing only those listed before it:

* ``errors``: :class:`SimulationInputError`.
* ``world``: every parameter of the world described above (weights, effects, vocabularies).
* ``arrays``: vectorised helpers (code draws, ragged indexing, pandas columns).
* ``timeline``: the time axis and its weekday, season and business-hour modulation.
* ``population``: accounts and leads.
* ``drift``: drift scenarios, applied to the population before the latent state.
* ``outcomes``: latent fit and intent, the two-stage conversion, the ``conversions``
  and ``ground_truth`` tables, and :func:`oracle_probability`.
* ``events``: event codes and the point processes that place events in time.
* ``web``, ``campaigns``: behaviour (web sessions, buying episodes, bots; emails,
  webinars).
* ``activities``: all behaviour assembled into the ``activities`` table.
* ``simulation``: :func:`simulate` and :class:`Simulation`.
* ``sales``: :func:`simulate_sales`, :class:`SalesProcess` and :func:`oracle_mqls`.
* ``presets``: named settings for a kind of company (``small-company``: a few hundred
  leads, a low base rate, one large region and two tiny ones), :data:`PRESETS`.
"""

from __future__ import annotations

from features.simulate.drift import Drift, LowFitFlood, SourceShift
from features.simulate.errors import SimulationInputError
from features.simulate.outcomes import oracle_probability
from features.simulate.sales import SalesProcess, oracle_mqls, simulate_sales
from features.simulate.simulation import Simulation, simulate

__all__ = [
    "Drift",
    "LowFitFlood",
    "SalesProcess",
    "Simulation",
    "SimulationInputError",
    "SourceShift",
    "oracle_mqls",
    "oracle_probability",
    "simulate",
    "simulate_sales",
]
