"""The built-in catalogue of out-of-scope classes, as disclosure policies write them.

Each class has a stable id, the sentence a policy uses for it in English and Dutch, the
phrases (regular expressions over lower-cased text, both languages) that point to it, and
phrases that argue against it (a proof of concept for a library finding, stored XSS for
self-XSS). Pure data: the config picks ids from it and may add classes of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutOfScopeClass:
    id: str
    en: str  # the policy's own sentence, English
    nl: str  # and Dutch
    phrases: tuple[str, ...]  # regexes over lower-cased text; each distinct hit adds weight
    unless: tuple[str, ...] = ()  # regexes that make this class unlikely

    def clause(self, language: str) -> str:
        return self.nl if language == "nl" else self.en


def _c(id_: str, en: str, nl: str, phrases: tuple[str, ...],
       unless: tuple[str, ...] = ()) -> OutOfScopeClass:
    return OutOfScopeClass(id_, en, nl, phrases, unless)


_POC = (r"proof[- ]of[- ]concept", r"\bpoc\b", r"steps to reproduce", r"stappen om te reproduceren",
        r"exploit(?:ed|able)? (?:it|this)", r"i was able to", r"ik kon ")

CATALOGUE: Mapping[str, OutOfScopeClass] = {c.id: c for c in (
    _c("spf-dkim-dmarc",
       "Missing or misconfigured SPF, DKIM or DMARC records.",
       "Ontbrekende of onjuist ingestelde SPF-, DKIM- of DMARC-records.",
       (r"\bdmarc\b", r"\bspf\b", r"\bdkim\b", r"p\s*=\s*none", r"email spoofing",
        r"e-?mail ?spoofing", r"spoof(?:ed)? e-?mails?", r"_dmarc\.", r"v=spf1",
        r"mail-?spoofing", r"e-?mails? (?:kunnen|can) (?:worden )?(?:be )?(?:gespoofd|spoofed)")),
    _c("clickjacking-no-sensitive-action",
       "Clickjacking on pages without sensitive actions.",
       "Clickjacking op pagina's zonder gevoelige handelingen.",
       (r"clickjacking", r"click-jacking", r"ui redress", r"x-frame-options",
        r"frame-ancestors", r"can be (?:framed|embedded in an iframe)", r"in een iframe",
        r"iframe")),
    _c("missing-security-headers",
       "Missing HTTP security headers that do not lead directly to a vulnerability.",
       "Ontbrekende HTTP-beveiligingsheaders die niet direct tot een kwetsbaarheid leiden.",
       (r"security headers?", r"beveiligingsheaders?", r"content-security-policy",
        r"strict-transport-security", r"\bhsts\b", r"x-content-type-options",
        r"referrer-policy", r"permissions-policy", r"missing headers?",
        r"headers? (?:is|are|ontbreken|ontbreekt|missing)", r"x-xss-protection")),
    _c("tls-configuration",
       "SSL/TLS configuration issues such as weak ciphers or old protocol versions.",
       "Problemen in de SSL/TLS-configuratie, zoals zwakke ciphers of oude protocolversies.",
       (r"tls ?1\.[01]\b", r"sslv[23]", r"weak cipher", r"zwakke cipher", r"cipher suites?",
        r"\bbeast\b", r"\bpoodle\b", r"\bsweet32\b", r"ssl ?labs", r"testssl",
        r"certificate .{0,30}(?:expired|expires)", r"certificaat (?:is )?verlopen",
        r"\brc4\b", r"3des", r"ssl/tls")),
    _c("version-disclosure",
       "Disclosure of software versions, server banners or stack traces without impact.",
       "Het tonen van softwareversies, serverbanners of stacktraces zonder gevolgen.",
       (r"version disclosure", r"versie(?:nummer)? (?:wordt )?(?:getoond|zichtbaar|lekt)",
        r"server banner", r"banner grabbing", r"x-powered-by", r"server: (?:apache|nginx|iis)",
        r"reveals? the (?:server )?version", r"versie van de (?:web)?server",
        r"information disclosure.{0,40}version", r"stack ?trace", r"versienummer")),
    _c("rate-limiting-no-impact",
       "Missing rate limiting on endpoints without a demonstrated impact.",
       "Ontbrekende rate limiting zonder aangetoonde gevolgen.",
       (r"rate[- ]limit", r"no limit on (?:the number of )?(?:requests|attempts)",
        r"brute[- ]?force", r"unlimited (?:requests|attempts|otp)", r"onbeperkt (?:aantal )?",
        r"geen limiet", r"captcha")),
    _c("csv-injection-no-impact",
       "CSV or formula injection without a demonstrated impact.",
       "CSV- of formule-injectie zonder aangetoonde gevolgen.",
       (r"csv[- ]injection", r"formula injection", r"formule-?injectie", r"=cmd\|",
        r"csv-injectie", r"=hyperlink\(", r"dde injection")),
    _c("username-enumeration",
       "Enumeration of user names or e-mail addresses.",
       "Het achterhalen van gebruikersnamen of e-mailadressen (enumeratie).",
       (r"user(?:name)? enumeration", r"account enumeration", r"e-?mail enumeration",
        r"enumerat(?:e|ion) (?:of )?(?:users|usernames|accounts|e-?mail)",
        r"gebruikersnamen (?:kunnen worden )?achterha", r"enumeratie",
        r"different (?:error )?messages? for (?:existing|valid)",
        r"(?:bestaat|bestaan) (?:wel|niet).{0,40}foutmelding")),
    _c("login-logout-csrf",
       "CSRF on login, logout or other forms without sensitive actions.",
       "CSRF op inloggen, uitloggen of andere formulieren zonder gevoelige handelingen.",
       (r"logout csrf", r"csrf (?:on|in|op) (?:the )?(?:logout|log-out|uitlog|login|inlog)",
        r"(?:logout|login|uitlog|inlog)(?:pagina|formulier| form| page| endpoint)? "
        r"(?:is )?(?:vulnerable to|kwetsbaar voor) csrf",
        r"log (?:a user|users|someone|iemand) out", r"force(?:d)? logout",
        r"(?:login|logout)[- ]csrf", r"uitloggen via csrf",
        r"(?:uitlog|inlog|logout|login)\w*.{0,40}(?:kwetsbaar voor|vulnerable to) csrf")),
    _c("outdated-browser",
       "Issues that only affect outdated or unsupported browsers.",
       "Problemen die alleen in verouderde of niet-ondersteunde browsers optreden.",
       (r"internet explorer", r"\bie ?[6-9]\b", r"\bie ?1[01]\b", r"outdated browsers?",
        r"verouderde browsers?", r"old(?:er)? browsers?", r"unsupported browsers?",
        r"firefox [1-4]?\d\b")),
    _c("known-library-no-poc",
       "Reports of known-vulnerable libraries or components without a working proof of concept.",
       "Meldingen van bekende kwetsbare libraries of componenten zonder werkende proof of "
       "concept.",
       (r"(?:outdated|vulnerable|old|verouderde|kwetsbare) (?:version of |versie van )?"
        r"(?:jquery|bootstrap|angular|lodash|library|libraries|component|plugin|wordpress)",
        r"jquery (?:version )?[123]\.\d", r"retire\.?js", r"known vulnerabilit",
        r"bekende kwetsbaarhe", r"snyk", r"npm audit",
        r"(?:library|bibliotheek|component) (?:is )?(?:outdated|verouderd)"),
       _POC),
    _c("dos",
       "Denial of service, including volumetric attacks and resource exhaustion.",
       "Denial of service, waaronder volumetrische aanvallen en het uitputten van middelen.",
       (r"denial[- ]of[- ]service", r"\bd?dos\b", r"slowloris", r"resource exhaustion",
        r"overbelast", r"platleggen", r"take (?:the site|it|the server) down",
        r"crash the server", r"flood(?:ing)? the")),
    _c("content-spoofing-no-vector",
       "Content spoofing or text injection without an attack vector.",
       "Content spoofing of tekstinjectie zonder aanvalsvector.",
       (r"content spoofing", r"text injection", r"tekstinjectie", r"tekst-injectie",
        r"inject (?:arbitrary )?text", r"content injection", r"willekeurige tekst")),
    _c("self-xss",
       "Self-XSS and XSS that requires the victim to paste code themselves.",
       "Self-XSS en XSS waarvoor het slachtoffer zelf code moet plakken.",
       (r"self[- ]xss", r"paste (?:it |this |the payload )?(?:in|into) (?:the|their|his|her) "
        r"(?:own )?(?:browser )?console", r"in (?:je|zijn|de) eigen (?:browser)?console",
        r"only (?:affects|works (?:for|on)) (?:my|your|the user's) own",
        r"alleen (?:in|op|voor) (?:je|mijn|het) eigen (?:account|profiel)"),
       (r"stored xss", r"other users", r"andere gebruikers", r"persistent")),
    _c("http-non-200-pages",
       "Findings on pages that answer with an HTTP error or redirect (404, 403, 301).",
       "Bevindingen op pagina's die antwoorden met een HTTP-fout of doorverwijzing (404, 403, "
       "301).",
       (r"404 (?:page|pagina|error|not found)", r"403 (?:page|pagina|forbidden)",
        r"error page", r"foutpagina", r"not found page", r"default (?:error|404) page")),
    _c("public-non-sensitive-files",
       "Publicly accessible files without sensitive information, such as robots.txt.",
       "Openbaar toegankelijke bestanden zonder gevoelige informatie, zoals robots.txt.",
       (r"robots\.txt", r"sitemap\.xml", r"humans\.txt", r"security\.txt",
        r"crossdomain\.xml", r"readme\.(?:txt|html)", r"license\.txt", r"directory listing",
        r"openbaar (?:toegankelijk|leesbaar) bestand")),
    _c("cookie-flags-non-sensitive",
       "Missing Secure or HttpOnly flags on cookies that are not sensitive.",
       "Ontbrekende Secure- of HttpOnly-vlaggen op cookies die niet gevoelig zijn.",
       (r"httponly", r"secure flag", r"samesite", r"cookie (?:flags?|attributes?|vlag)",
        r"cookies? (?:without|zonder) (?:the )?(?:secure|httponly)")),
    _c("options-method",
       "The HTTP OPTIONS or TRACE method being enabled.",
       "Het aanstaan van de HTTP-methoden OPTIONS of TRACE.",
       (r"options method", r"trace method", r"http options", r"http trace",
        r"methode options", r"methode trace", r"\boptions (?:and|en) trace\b",
        r"trace (?:is )?enabled", r"allow: (?:get|options)")),
    _c("host-header-injection",
       "Host header injection without a demonstrated cache poisoning or password-reset impact.",
       "Host-header-injectie zonder aangetoonde cache poisoning of misbruik van "
       "wachtwoordherstel.",
       (r"host header (?:injection|poisoning|attack)", r"host-header", r"x-forwarded-host",
        r"host header is reflected", r"manipulat(?:e|ed|ing) the host header"),
       (r"cached .{0,60}(?:all|every|other) (?:visitors|users)", r"poisoned (?:the )?cache")),
    _c("metadata-exposure",
       "EXIF or other metadata in published files and images.",
       "EXIF- of andere metadata in gepubliceerde bestanden en afbeeldingen.",
       (r"\bexif\b", r"metadata (?:in|of|from|exposure) (?:the |your )?(?:pdf|document|image|"
        r"photo|file|brochure|foto|afbeelding)?", r"(?:pdf|document|image|photo)'?s? .{0,30}"
        r"metadata", r"in de metadata", r"gps coordinates", r"gps-co[oö]rdinaten",
        r"author field", r"document properties")),
    _c("social-engineering",
       "Social engineering, phishing and attacks on our staff.",
       "Social engineering, phishing en aanvallen op onze medewerkers.",
       (r"social engineering", r"phishing (?:mail|test|campaign|simulation|attack)",
        r"vulnerable to phishing", r"vishing", r"pretext", r"pretend(?:ed|ing)? to be",
        r"deed me voor als", r"called (?:your|the) (?:help ?desk|support)",
        r"(?:helpdesk|servicedesk) gebeld"),
       (r"open redirect",)),
    _c("physical-attacks",
       "Physical attacks on our offices, data centres or equipment.",
       "Fysieke aanvallen op onze kantoren, datacenters of apparatuur.",
       (r"physical (?:access|attack|security)", r"fysieke (?:toegang|aanval|beveiliging)",
        r"tailgat", r"badge", r"toegangspas", r"server ?room", r"serverruimte",
        r"walked into", r"binnengelopen", r"usb (?:stick|drop)")),
)}
