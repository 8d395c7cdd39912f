// The room page's words, in English and Russian; the browser's language picks one.

const STRINGS = {
  en: {
    mic: "Microphone",
    camera: "Camera",
    screen: "Share screen",
    copyLink: "Copy link",
    leave: "Leave",
    yourName: "Your name",
    join: "Join",
    save: "Save and rejoin",
    cancel: "Cancel",
    editName: "Change your name: {name}",
    connecting: "Connecting…",
    askingMedia: "Asking for camera and microphone…",
    alone: "You are the only one here. Waiting for others…",
    inCall: "In the call: {n}",
    reconnecting: "Connection lost. Reconnecting…",
    reconnectingIn: "Connection lost. Reconnecting in {s} s…",
    mediaFailed: "Media connection failed. Reconnecting…",
    restartingIn: "The server is restarting. Reconnecting in {s} s…",
    restartingSoon: "The server is restarting soon. The call goes on and will reconnect by itself.",
    unavailableIn: "The service is temporarily unavailable. Trying again in {s} s…",
    wrongNodeIn: "The server holding this call cannot be found. Trying again in {s} s…",
    micOnly: "No camera found: the others will only hear you.",
    receiveOnly: "No camera or microphone: you can only watch and listen.",
    deviceLost: "Your {device} was disconnected. The call goes on without it.",
    cameraWord: "camera",
    micWord: "microphone",
    deniedTitle: "No access to the camera or microphone",
    deniedText:
      "The browser blocked {what}. To allow it, click the camera or lock icon in the address bar, choose Allow, then press Try again. Or join now with what is available.",
    deniedBoth: "the camera and the microphone",
    deniedCamera: "the camera",
    deniedMic: "the microphone",
    deniedNotice: "Joined without {what}: access was blocked.",
    tryAgain: "Try again",
    joinAnyway: "Join anyway",
    rejoin: "Rejoin",
    linkCopied: "Link copied",
    linkShown: "Copy the link: {url}",
    errorTitle: "Cannot join the call",
    ROOM_NOT_FOUND: "This room does not exist. Ask the bot for a new link.",
    ROOM_EXPIRED: "This room has expired. Ask the bot for a new link.",
    ROOM_FULL:
      "This room is full: it already has the most participants a call can have. Try again when someone leaves, or ask the bot for a new room.",
    INVALID_ROOM_ID: "This link is not valid. Check that it was copied in full.",
    UNREACHABLE:
      "The server cannot be reached. Check your internet connection and try again in a minute.",
    NO_WEBRTC: "This browser cannot make calls: WebRTC is turned off or missing. Try another browser.",
    UNKNOWN: "The server refused the connection ({code}).",
    CLIENT_ERROR: "Something went wrong on this page. Try reloading it.",
    endedTitle: "Call ended",
    left: "You left the call. Camera and microphone are off.",
    roomEnded: "The call was ended.",
    you: "You",
    screenOf: "{name}: screen",
  },
  ru: {
    mic: "Микрофон",
    camera: "Камера",
    screen: "Показать экран",
    copyLink: "Ссылка",
    leave: "Выйти",
    yourName: "Ваше имя",
    join: "Войти",
    save: "Сохранить и переподключиться",
    cancel: "Отмена",
    editName: "Изменить имя: {name}",
    connecting: "Подключение…",
    askingMedia: "Запрашиваем доступ к камере и микрофону…",
    alone: "Вы здесь одни. Ждём остальных…",
    inCall: "В звонке: {n}",
    reconnecting: "Связь потеряна. Переподключаемся…",
    reconnectingIn: "Связь потеряна. Переподключение через {s} с…",
    mediaFailed: "Медиасоединение прервалось. Переподключаемся…",
    restartingIn: "Сервер перезапускается. Переподключение через {s} с…",
    restartingSoon: "Сервер скоро перезапустится. Звонок продолжается и переподключится сам.",
    unavailableIn: "Сервис временно недоступен. Повторим через {s} с…",
    wrongNodeIn: "Не удаётся найти сервер этого звонка. Повторим через {s} с…",
    micOnly: "Камера не найдена: вас будут только слышать.",
    receiveOnly: "Нет камеры и микрофона: вы можете только смотреть и слушать.",
    deviceLost: "{device} отключён. Звонок продолжается без него.",
    cameraWord: "Камера",
    micWord: "Микрофон",
    deniedTitle: "Нет доступа к камере или микрофону",
    deniedText:
      "Браузер запретил доступ: {what}. Чтобы разрешить, нажмите на значок камеры или замка в адресной строке, выберите «Разрешить» и нажмите «Попробовать снова». Или войдите с тем, что доступно.",
    deniedBoth: "камера и микрофон",
    deniedCamera: "камера",
    deniedMic: "микрофон",
    deniedNotice: "Вы вошли без доступа: {what}.",
    tryAgain: "Попробовать снова",
    joinAnyway: "Войти так",
    rejoin: "Вернуться в звонок",
    linkCopied: "Ссылка скопирована",
    linkShown: "Скопируйте ссылку: {url}",
    errorTitle: "Не удалось войти в звонок",
    ROOM_NOT_FOUND: "Такой комнаты нет. Попросите у бота новую ссылку.",
    ROOM_EXPIRED: "Срок действия комнаты истёк. Попросите у бота новую ссылку.",
    ROOM_FULL:
      "Комната заполнена: в звонке уже максимум участников. Попробуйте снова, когда кто-нибудь выйдет, или попросите у бота новую комнату.",
    INVALID_ROOM_ID: "Неверная ссылка. Проверьте, что она скопирована целиком.",
    UNREACHABLE: "Сервер недоступен. Проверьте подключение к интернету и попробуйте через минуту.",
    NO_WEBRTC: "Этот браузер не может звонить: WebRTC выключен или недоступен. Попробуйте другой браузер.",
    UNKNOWN: "Сервер отказал в подключении ({code}).",
    CLIENT_ERROR: "Что-то пошло не так на странице. Попробуйте её перезагрузить.",
    endedTitle: "Звонок завершён",
    left: "Вы вышли из звонка. Камера и микрофон выключены.",
    roomEnded: "Звонок завершён.",
    you: "Вы",
    screenOf: "{name}: экран",
  },
};

/** @typedef {keyof typeof STRINGS.en} StringKey */

export const lang = (navigator.language || "en").toLowerCase().startsWith("ru") ? "ru" : "en";

/**
 * @param {string} key
 * @returns {key is StringKey}
 */
export function hasString(key) {
  return key in STRINGS.en;
}

/**
 * @param {StringKey} key
 * @param {Object<string, string | number>} [vars]
 * @returns {string}
 */
export function t(key, vars = {}) {
  return STRINGS[lang][key].replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}
